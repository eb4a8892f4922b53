// Package initproc is sandbox-init, PID 1 of a sandbox: it reads its
// configuration from the parent (internal/wire), brings up lo and the
// network interface, builds the root (rootfs.Execute), confines itself
// (capabilities, no_new_privs, Landlock, seccomp), starts the payload,
// serves `sandbox exec`, reaps every process and reports how the payload
// ended.
//
// It runs inside the sandbox, so it imports only what init needs: the
// mechanism packages it drives, journal and internal/wire; never spec,
// parent or control.
package initproc
