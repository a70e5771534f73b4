"""Enforcement: what happens on the platform after a decision.

* `warden.enforce.strikes` — pure strike arithmetic (weights, decay, ladder);
* `warden.enforce.outbox` — `EnforcementOutbox`: decisions, reviewer decisions and reversals
  become idempotent webhook rows and strikes, in the caller's transaction;
* `warden.enforce.dispatcher` — `WebhookDispatcher`: signed delivery with retries, backoff and
  dead letters;
* `warden.enforce.signing` — the `Warden-Signature` scheme; receivers use `verify_signature`.

Import the submodules directly: this package imports nothing, so the pure parts stay cheap.
"""
