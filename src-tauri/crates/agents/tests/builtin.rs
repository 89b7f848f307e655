//! The built-in registry against the system description's agent inventory: every file
//! loads, the ids are exactly the spec's 38, and the matrix's counts and roles hold.

use std::collections::{BTreeMap, BTreeSet};

use sutazai_agents::{AgentSource, Registry};
use sutazai_core::{AgentCategory, AgentRole};

/// The spec's "Complete Agent Registry", in its order, with each agent's family.
const SPEC_AGENTS: [(&str, AgentCategory); 38] = {
    use AgentCategory::*;
    [
        ("agi-system-architect", CoreIntelligence),
        ("autonomous-system-controller", CoreIntelligence),
        ("ai-agent-orchestrator", CoreIntelligence),
        ("complex-problem-solver", CoreIntelligence),
        ("ai-product-manager", CoreIntelligence),
        ("ai-scrum-master", CoreIntelligence),
        ("task-assignment-coordinator", CoreIntelligence),
        ("system-optimizer-reorganizer", CoreIntelligence),
        ("senior-ai-engineer", Development),
        ("senior-backend-developer", Development),
        ("senior-frontend-developer", Development),
        ("code-generation-improver", Development),
        ("opendevin-code-generator", Development),
        ("testing-qa-validator", Development),
        ("deployment-automation-master", Development),
        ("ai-agent-creator", Development),
        ("gpt-engineer-specialist", Development),
        ("aider-code-assistant", Development),
        ("bigagi-system-manager", Development),
        ("autogen-conversation-manager", Development),
        ("infrastructure-devops-manager", Infrastructure),
        ("hardware-resource-optimizer", Infrastructure),
        ("context-optimization-engineer", Infrastructure),
        ("ollama-integration-specialist", Infrastructure),
        ("litellm-proxy-manager", Infrastructure),
        ("deep-learning-coordinator-manager", Infrastructure),
        ("localagi-orchestration-manager", SpecializedAi),
        ("agentzero-coordinator", SpecializedAi),
        ("langflow-workflow-designer", SpecializedAi),
        ("dify-automation-specialist", SpecializedAi),
        ("flowiseai-flow-manager", SpecializedAi),
        ("autogpt-autonomous-executor", SpecializedAi),
        ("agentgpt-autonomous-executor", SpecializedAi),
        ("shell-automation-specialist", SpecializedAi),
        ("semgrep-security-analyzer", Security),
        ("security-pentesting-specialist", Security),
        ("kali-security-specialist", Security),
        ("private-data-analyst", Security),
    ]
};

/// Requirements used in the system description's examples; each must have a choice of
/// agents so selection and fallback mean something.
const SPEC_REQUIREMENTS: [&str; 9] = [
    "code_generation",
    "code_analysis",
    "code_review",
    "security_review",
    "security_implementation",
    "infrastructure_management",
    "deployment_automation",
    "monitoring_setup",
    "security_configuration",
];

/// The matrix's role for each family.
fn role_of(category: AgentCategory) -> AgentRole {
    match category {
        AgentCategory::CoreIntelligence => AgentRole::Coordinator,
        AgentCategory::Development => AgentRole::Worker,
        AgentCategory::Infrastructure | AgentCategory::SpecializedAi => AgentRole::Specialist,
        AgentCategory::Security => AgentRole::Monitor,
    }
}

#[test]
fn every_builtin_file_loads() {
    let (registry, errors) = Registry::load(None);
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(messages.is_empty(), "broken built-in files: {messages:#?}");
    assert_eq!(registry.len(), 38);
    assert_eq!(Registry::builtin().len(), 38);
    assert!(!registry.is_empty());
}

#[test]
fn ids_are_exactly_the_spec_list() {
    let registry = Registry::builtin();
    let expected: BTreeSet<&str> = SPEC_AGENTS.iter().map(|(id, _)| *id).collect();
    assert_eq!(expected.len(), 38, "the test's own list has a duplicate");
    let actual: BTreeSet<&str> = registry.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(actual, expected);
    for id in expected {
        assert_eq!(registry.source(id), Some(AgentSource::Builtin), "{id}");
    }
}

#[test]
fn iteration_is_ordered_by_id() {
    let registry = Registry::builtin();
    let ids: Vec<&str> = registry.iter().map(|a| a.id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted);
}

#[test]
fn categories_and_roles_follow_the_matrix() {
    let registry = Registry::builtin();
    for (id, category) in SPEC_AGENTS {
        let agent = registry
            .get(id)
            .unwrap_or_else(|| panic!("{id} is missing"));
        assert_eq!(agent.category, category, "{id}");
        assert_eq!(agent.role, role_of(category), "{id}");
    }
    let mut per_category: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_role: BTreeMap<String, usize> = BTreeMap::new();
    for agent in registry.iter() {
        *per_category
            .entry(format!("{:?}", agent.category))
            .or_default() += 1;
        *per_role.entry(format!("{:?}", agent.role)).or_default() += 1;
    }
    let expect = |pairs: &[(&str, usize)]| -> BTreeMap<String, usize> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    };
    assert_eq!(
        per_category,
        expect(&[
            ("CoreIntelligence", 8),
            ("Development", 12),
            ("Infrastructure", 6),
            ("SpecializedAi", 8),
            ("Security", 4),
        ])
    );
    assert_eq!(
        per_role,
        expect(&[
            ("Coordinator", 8),
            ("Worker", 12),
            ("Specialist", 14),
            ("Monitor", 4),
        ])
    );
}

#[test]
fn spec_requirements_resolve_to_several_agents() {
    let registry = Registry::builtin();
    for requirement in SPEC_REQUIREMENTS {
        let agents = registry.with_capability(requirement);
        assert!(
            agents.len() >= 2,
            "`{requirement}` resolves to {:?}",
            agents.iter().map(|a| &a.id).collect::<Vec<_>>()
        );
        assert!(registry.capabilities().contains(requirement));
    }
}

#[test]
fn coordinators_plan_and_synthesise() {
    let registry = Registry::builtin();
    let coordinators: Vec<_> = registry
        .iter()
        .filter(|a| a.role == AgentRole::Coordinator)
        .collect();
    assert_eq!(coordinators.len(), 8);
    for agent in coordinators {
        assert!(agent.has_capability("task_planning"), "{}", agent.id);
        assert!(agent.has_capability("synthesis"), "{}", agent.id);
    }
    let planners: BTreeSet<&str> = registry
        .with_capability("task_planning")
        .iter()
        .map(|a| a.role)
        .map(|role| {
            if role == AgentRole::Coordinator {
                "coordinator"
            } else {
                "other"
            }
        })
        .collect();
    assert_eq!(planners, BTreeSet::from(["coordinator"]));
}

#[test]
fn builtins_use_the_default_model_and_sane_settings() {
    for agent in Registry::builtin().iter() {
        assert_eq!(agent.model, None, "{}", agent.id);
        assert_eq!(agent.provider, None, "{}", agent.id);
        assert!((0.0..=0.5).contains(&agent.temperature), "{}", agent.id);
        assert!((2..=8).contains(&agent.max_concurrency), "{}", agent.id);
        assert!(!agent.name.is_empty(), "{}", agent.id);
        let prompt = &agent.system_prompt;
        assert!(
            prompt.contains("concise"),
            "{} prompt must ask for concision",
            agent.id
        );
        assert!(
            !prompt.contains("  "),
            "{} prompt has a doubled space",
            agent.id
        );
        assert!(
            !prompt.contains('\n'),
            "{} prompt has a stray newline",
            agent.id
        );
        let sentences = prompt.matches(". ").count() + 1;
        assert!(
            (2..=5).contains(&sentences),
            "{} prompt has {sentences} sentences",
            agent.id
        );
    }
}

#[test]
fn unknown_lookups_are_empty() {
    let registry = Registry::builtin();
    assert!(registry.get("no-such-agent").is_none());
    assert!(registry.source("no-such-agent").is_none());
    assert!(registry.with_capability("no_such_capability").is_empty());
}
