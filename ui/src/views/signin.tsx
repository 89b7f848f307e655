// The sign-in screen, shown instead of the dashboard when the server runs with
// authentication and no session is held (`/auth/whoami` answered 401) or the session ended.
// An API key is exchanged for tokens (`POST /auth/token`); the server's refusal is shown
// in its own words.

import { useState } from "preact/hooks";
import { signIn } from "../ui/app-state";
import { Button } from "../ui/components";
import { useAction } from "../ui/hooks";

export const CREATE_KEY_COMMAND = "sutazai auth keys create --name NAME --role admin";

export function SignIn(props: { base: string; reason: string | null }) {
  const [key, setKey] = useState("");
  const [missing, setMissing] = useState(false);
  const action = useAction<void>();
  const onSubmit = (e: Event): void => {
    e.preventDefault();
    if (key.trim() === "") {
      setMissing(true);
      return;
    }
    setMissing(false);
    void action.run(() => signIn(key));
  };
  const error = missing ? { message: "Paste an API key first.", code: "" } : action.error;
  return (
    <div class="signin-page">
      <form class="panel signin" onSubmit={onSubmit} noValidate data-testid="signin">
        <div class="signin-brand">
          <img src="./favicon.svg" alt="" width={30} height={30} />
          <h1>Sign in to SutazAI</h1>
        </div>
        <p class="muted">
          The API at <span class="mono">{props.base}</span> asks who you are. Paste an API key: it is exchanged for a
          session that lasts while this window is open.
        </p>
        {props.reason && (
          <p class="signin-reason" data-testid="signin-reason">
            Your session ended: {props.reason}
          </p>
        )}
        <label class="field">
          <span class="field-label">API key</span>
          <input
            type="password"
            autocomplete="off"
            spellcheck={false}
            placeholder="szk_…"
            value={key}
            onInput={(e) => {
              setKey((e.currentTarget as HTMLInputElement).value);
              setMissing(false);
            }}
            data-testid="signin-key"
            autofocus
          />
        </label>
        {error && (
          <div class="error-note" role="alert" data-testid="signin-error" data-code={error.code || undefined}>
            {error.message}
          </div>
        )}
        <div class="form-actions">
          <Button type="submit" kind="primary" busy={action.busy} testid="signin-submit">
            Sign in
          </Button>
        </div>
        <div class="signin-help">
          <h3>Where keys come from</h3>
          <p>An administrator creates one on the machine running the server:</p>
          <pre class="json">{CREATE_KEY_COMMAND}</pre>
          <p class="muted small">
            The key (<span class="mono">szk_…</span>) is printed once. Use <span class="mono">--role operator</span> or{" "}
            <span class="mono">--role viewer</span> for less: viewers only read, operators also run tasks, agents and
            infrastructure, admins change settings and keys too. Signed in as an admin, you can create keys under
            Alerts &amp; Settings → Access.
          </p>
        </div>
      </form>
    </div>
  );
}
