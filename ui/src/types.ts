// The API's JSON shapes, as the Rust handlers serialise them (field names are the
// spec's). Each interface names the type it mirrors so a change there is easy to follow.

export type Priority = "low" | "normal" | "high" | "critical";
export const PRIORITIES: Priority[] = ["low", "normal", "high", "critical"];

export type Pattern = "hierarchical" | "collaborative" | "pipeline" | "swarm";
export const PATTERNS: Pattern[] = ["collaborative", "hierarchical", "pipeline", "swarm"];

export type TaskStatus = "queued" | "awaiting_approval" | "running" | "completed" | "failed" | "cancelled";
export const TASK_STATUSES: TaskStatus[] = ["queued", "awaiting_approval", "running", "completed", "failed", "cancelled"];
export const TERMINAL: ReadonlySet<string> = new Set(["completed", "failed", "cancelled"]);

/** `sutazai_core::Constraints`. */
export interface Constraints {
  max_agents?: number;
  estimated_duration?: number;
  required_approvals?: string[];
}

/** `sutazai_core::TaskRequest` (`POST /tasks`). */
export interface TaskRequest {
  name: string;
  description?: string;
  type?: string;
  priority?: Priority;
  requirements: string[];
  coordination_pattern?: Pattern;
  payload?: unknown;
  constraints?: Constraints;
}

/** Answer of `POST /tasks`. */
export interface Submitted {
  task_id: string;
  session_id: string;
  status: TaskStatus;
  pending_approvals: string[];
}

export interface Approval {
  name: string;
  approved_by: string;
  approved_at: string;
}

/** `sutazai_core::Task`. */
export interface Task {
  id: string;
  session_id: string;
  name: string;
  description: string;
  type: string;
  priority: Priority;
  requirements: string[];
  coordination_pattern: Pattern;
  payload: unknown;
  constraints: Constraints;
  status: TaskStatus;
  assigned_agents: string[];
  approvals: Approval[];
  result?: unknown;
  error?: string;
  created_at: string;
  started_at?: string;
  completed_at?: string;
}

export type StepKind = "plan" | "work" | "stage" | "round" | "vote" | "synthesize";
export type StepStatus = "running" | "completed" | "failed";

/** `sutazai_core::Step`. */
export interface Step {
  task_id: string;
  key: string;
  seq: number;
  kind: StepKind;
  agent_id: string;
  status: StepStatus;
  input: string;
  output?: string;
  error?: string;
  attempts: number;
  model?: string;
  prompt_tokens: number;
  completion_tokens: number;
  duration?: number;
  started_at: string;
  finished_at?: string;
}

/** `sutazai_orchestrator::TaskDetail`: the task flattened, with its steps. */
export interface TaskDetail extends Task {
  pending_approvals: string[];
  steps: Step[];
}

export interface TaskList {
  tasks: Task[];
  total: number;
}

/** `sutazai_orchestrator::RecentPerformance`. */
export interface RecentPerformance {
  window_seconds: number;
  completed: number;
  failed: number;
  success_rate: number | null;
  error_rate: number | null;
  average_response_time: number | null;
  p95_response_time: number | null;
}

export type AgentState = "healthy" | "degraded" | "stopped";

/** `sutazai_orchestrator::AgentInfo`. */
export interface AgentInfo {
  id: string;
  name: string;
  category: string;
  role: string;
  capabilities: string[];
  status: AgentState;
  model: string;
  provider: string;
  active_steps: number;
  max_concurrency: number;
  load: number;
  completed_steps: number;
  failed_steps: number;
  success_rate: number | null;
  average_response_time: number | null;
  source: string;
  recent: RecentPerformance;
}

export interface AgentList {
  agents: AgentInfo[];
  total: number;
}

export const AGENT_CATEGORIES = ["core_intelligence", "development", "infrastructure", "specialized_ai", "security"] as const;
export type AgentCategory = (typeof AGENT_CATEGORIES)[number];

export const AGENT_ROLES = ["coordinator", "worker", "specialist", "monitor"] as const;
export type AgentRole = (typeof AGENT_ROLES)[number];

/** `sutazai_core::AgentSpec`: an agent's definition (`POST /agents`, `PUT /agents/{id}`). */
export interface AgentSpec {
  id: string;
  name: string;
  category: AgentCategory;
  role: AgentRole;
  capabilities: string[];
  /** Left out: the configured default model. */
  model?: string;
  /** Left out: the configured default provider. */
  provider?: string;
  system_prompt: string;
  temperature: number;
  max_concurrency: number;
}

/** `sutazai_orchestrator::AgentDefinition` (`GET /agents/{id}/definition`). */
export interface AgentDefinition {
  definition: AgentSpec;
  /** `builtin`, or the path of the user file that defines it. */
  source: string;
  /** Whether a built-in agent has this id (deleting the user file brings it back). */
  builtin: boolean;
}

/** `sutazai_orchestrator::AgentRemoval` (`DELETE /agents/{id}`). */
export interface AgentRemoval {
  id: string;
  deleted_file: string;
  /** The built-in agent back in place of the user's, or null when the agent is gone. */
  restored: AgentInfo | null;
}

/** Answer of `POST /agents/{id}/control`. */
export interface AgentControlAnswer {
  agent_id: string;
  action: string;
  status: AgentState;
  agent: AgentInfo;
  /** The agent's worker containers: a ServiceStatus, `{error}`, or null. */
  workers: unknown;
}

/** `/health`'s LLM check (`/status.llm`). */
export interface LlmCheck {
  provider: string;
  model: string;
  reachable: boolean;
  model_available: boolean;
  error?: string;
}

/** `sutazai_infra::Availability`, also `/status.infrastructure`. */
export interface Availability {
  available: boolean;
  docker_host?: string;
  version?: string | null;
  reason?: string | null;
  hint?: string | null;
  checked_at?: string;
}

export interface QueueDepth {
  queue: string;
  waiting: number;
  pending: number;
}

export interface BusStatus {
  backend: string;
  available: boolean;
  error?: string;
  node_id?: string;
  published?: number;
  delivered?: number;
  acknowledged?: number;
  retried?: number;
  dead_lettered?: number;
  rate_limited?: number;
  messages_per_minute?: number;
  dead_letters?: number;
  queue_depths?: QueueDepth[];
  workers_alive?: number;
}

/** `GET /status`. */
export interface SystemStatus {
  status: string;
  system_health: number;
  version: string;
  uptime: number;
  active_tasks: number;
  queued_tasks: number;
  awaiting_approval: number;
  max_concurrent_tasks: number;
  tasks: { submitted: number; completed: number; failed: number };
  agents: { total: number; healthy: number; degraded: number; stopped: number };
  llm: LlmCheck;
  journal: { ok: boolean };
  message_bus: BusStatus;
  infrastructure: Availability;
  monitoring: {
    enabled: boolean;
    alerts_firing?: number;
    alerts_critical?: number;
    cpu_percent?: number | null;
    memory_percent?: number | null;
    gpus?: number;
    history?: boolean;
  };
}

export interface DiskSample {
  mount: string;
  total_bytes: number;
  available_bytes: number;
  used_percent: number;
}

export interface NetworkSample {
  interface: string;
  rx_bytes_per_second: number;
  tx_bytes_per_second: number;
}

export interface GpuSample {
  index: number;
  name: string;
  utilization_percent: number;
  memory_used_bytes: number;
  memory_total_bytes: number;
  memory_percent: number;
  temperature_celsius: number | null;
}

/** `sutazai_monitor::HostSnapshot`. */
export interface HostSnapshot {
  at: string;
  cpu_percent: number;
  per_core_percent: number[];
  load_average: [number, number, number];
  memory_used_bytes: number;
  memory_total_bytes: number;
  memory_percent: number;
  swap_used_bytes: number;
  swap_total_bytes: number;
  disks: DiskSample[];
  networks: NetworkSample[];
  temperatures: { label: string; celsius: number }[];
  top_processes: { pid: number; name: string; cpu_percent: number; memory_bytes: number }[];
  gpus: GpuSample[];
}

/** `GET /monitoring/host`. */
export interface HostAnswer {
  latest: HostSnapshot | null;
  history: HostSnapshot[];
}

export type Severity = "info" | "warning" | "critical";
export const SEVERITIES: Severity[] = ["info", "warning", "critical"];

export interface Delivery {
  channel: string;
  change: string;
  status: string;
  attempts: number;
  error: string | null;
}

/** `sutazai_monitor::AlertRecord`. */
export interface AlertRecord {
  id: number;
  rule_id: string;
  subject: string;
  severity: Severity;
  status: "firing" | "resolved";
  message: string;
  value: number;
  fired_at: string;
  resolved_at: string | null;
  acknowledged: boolean;
  deliveries: Delivery[];
}

/** `sutazai_monitor::Rule` (sent whole to `PUT /alerts/rules/{id}`). */
export interface Rule {
  id: string;
  metric: string;
  comparison: "above" | "below";
  threshold: number;
  for_seconds: number;
  cooldown_seconds: number;
  severity: Severity;
  enabled: boolean;
}

/** `GET /alerts`. */
export interface AlertList {
  alerts: AlertRecord[];
  rules: Rule[];
}

export interface SeriesPoint {
  t: number;
  avg: number;
  min: number;
  max: number;
  count: number;
}

/** `sutazai_monitor::SeriesAnswer`. */
export interface SeriesAnswer {
  metric: string;
  start: string;
  end: string;
  step: number;
  resolution: number;
  series: { subject: string; points: SeriesPoint[] }[];
}

export interface SeriesInfo {
  metric: string;
  subject: string;
  last_at: string;
}

export interface AgentPerformance {
  success_rate: number;
  average_response_time: number;
  p50_response_time: number | null;
  p95_response_time: number | null;
  completed: number;
  failed: number;
  error_rate: number;
  total_tokens: number;
  prompt_tokens: number;
  completion_tokens: number;
}

export interface PatternPerformance {
  completed: number;
  failed: number;
  cancelled: number;
  completion_rate: number;
  average_duration: number | null;
  p50_duration: number | null;
  p95_duration: number | null;
}

/** `sutazai_orchestrator::Analytics`. */
export interface Analytics {
  start_date: string | null;
  end_date: string | null;
  average_success_rate: number;
  average_response_time: number;
  p50_response_time: number | null;
  p95_response_time: number | null;
  total_steps: number;
  completed_steps: number;
  failed_steps: number;
  total_tokens: number;
  throughput_per_hour: number | null;
  agent_performance: Record<string, AgentPerformance>;
  pattern_performance: Record<string, PatternPerformance>;
}

export const MESSAGE_TYPES = [
  "task_request",
  "task_response",
  "status_update",
  "health_check",
  "coordination_message",
  "system_command",
  "system_announcement",
] as const;

export const SEND_PATTERNS = ["point_to_point", "pub_sub", "request_response"] as const;

/** `sutazai_core::Message`. */
export interface BusMessage {
  id: string;
  sender_id: string;
  recipient_id?: string;
  message_type: string;
  pattern: string;
  priority: Priority;
  topic?: string;
  payload: Record<string, unknown>;
  metadata: Record<string, unknown>;
  created_at: string;
  expires_at?: string;
}

/** Answer of `POST /messages/send` and `/messages/broadcast`. */
export interface Sent {
  message_id: string;
  status: string;
  pattern: string;
  queue: string;
}

export const DEAD_REASONS = [
  "expired",
  "max_attempts",
  "rate_limited",
  "bad_signature",
  "unsigned",
  "decrypt_failed",
  "decompress_failed",
  "malformed",
] as const;

/** `sutazai_bus::DeadLetter`. */
export interface DeadLetter {
  id: string;
  reason: string;
  detail: string;
  queue: string;
  attempts: number;
  dead_at: string;
  message?: BusMessage;
  header?: unknown;
  raw_base64?: string;
}

export interface DeadLetterList {
  dead_letters: DeadLetter[];
  count: number;
}

/** `sutazai_bus::NodeInfo`. */
export interface NodeInfo {
  node_id: string;
  role: string;
  agents: string[];
  host: string;
  pid: number;
  started_at: string;
  last_seen: string;
  handled: number;
  alive: boolean;
}

export interface Workers {
  nodes: NodeInfo[];
  alive: number;
}

/** `sutazai_infra::ContainerInfo`. */
export interface ContainerInfo {
  id: string;
  name: string;
  service: string;
  replica: number;
  image: string;
  state: string;
  health: string;
  uptime_seconds: number | null;
  restarts: number;
  ports: string[];
  exit_code: number | null;
}

/** `sutazai_infra::ServiceStatus`. */
export interface ServiceStatus {
  name: string;
  kind: string;
  description: string;
  image: string;
  state: string;
  health: string;
  desired_replicas: number;
  running_replicas: number;
  endpoint: string | null;
  containers: ContainerInfo[];
}

/** `sutazai_infra::InfraStatus`. */
export interface InfraStatus {
  docker: Availability;
  project: string;
  services: ServiceStatus[];
  auto_scaling: boolean;
}

/** `sutazai_infra::DeployReport`. */
export interface DeployReport {
  services: string[];
  seconds: number;
  status: InfraStatus;
}

/** `sutazai_infra::PullProgress`. */
export interface PullProgress {
  reference: string;
  layer: string;
  status: string;
  current: number | null;
  total: number | null;
}

/** `sutazai_infra::LogLine`. */
export interface LogLine {
  container: string;
  stream: string;
  line: string;
}

/** `sutazai_infra::StatsSample`. */
export interface StatsSample {
  container: string;
  read_at: string | null;
  cpu_percent: number;
  memory_bytes: number;
  memory_limit_bytes: number;
  network_rx_bytes: number;
  network_tx_bytes: number;
  block_read_bytes: number;
  block_write_bytes: number;
}

/** `sutazai_infra::InfraEvent` (`data` of a `/ws` `infrastructure` message). */
export type InfraEvent =
  | { event: "step"; step: string; service: string; status: string; message: string }
  | ({ event: "pull" } & PullProgress)
  | { event: "container"; service: string; container: string; action: string }
  | { event: "healed"; service: string; container: string; reason: string; attempt: number }
  | { event: "alert"; severity: string; service: string; message: string }
  | { event: "scaled"; service: string; from: number; to: number; reason: string }
  | { event: "docker"; available: boolean; reason: string | null };

/** One check of `GET /setup/doctor` (`sutazai_cli::doctor::Check`). */
export interface DoctorCheck {
  /** Display text (`llm endpoint`, `default model`, `docker`, …); the list is the server's. */
  name: string;
  status: "pass" | "fail" | "skip";
  /** A failure means the server cannot work as configured. */
  essential: boolean;
  /** What was found. */
  detail: string;
  /** What to do about a failure. */
  hint?: string;
  /** Further lines (one per bad agent file, …). */
  notes?: string[];
}

/** `GET /setup/doctor` (`sutazai_cli::doctor::Report`). */
export interface DoctorReport {
  /** Every essential check passed. */
  ok: boolean;
  checks: DoctorCheck[];
}

/** One line of `POST /models/pull` (NDJSON): progress, then `success` or an error. */
export interface ModelPullLine {
  status?: string;
  digest?: string;
  total?: number;
  completed?: number;
  error?: { code: string; message: string };
}

/** One `/ws` message: orchestrator events, `system_status`, `alert`, `infrastructure`, `lagged`. */
export interface WsMessage {
  type: string;
  [field: string]: unknown;
}
