// Package parent is the host side of a run: Run takes a Spec and makes it
// happen — the sandbox's record, the --upper lock, the ephemeral directory,
// the cgroup (one manager per kind of host), init started in new
// namespaces, its id maps, the network driver, the configuration sent to
// init, then the loop that relays signals and the terminal, watches init
// and collects how the payload ended; with --detach, the background
// supervisor that does all of that.
//
// It speaks to init only through internal/wire; it never imports
// initproc. It may import spec, journal and the mechanism packages.
package parent
