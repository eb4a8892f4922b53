// Package e2e holds the end-to-end tests of `sandbox run`. They exercise the
// built binary ($SANDBOX_BIN, or one built by TestMain) against the contract in
// docs/cli.md. Run them as an unprivileged user with /etc/subuid and
// /etc/subgid ranges; with CI=true a missing prerequisite is a failure, not a
// skip.
package e2e
