// Package spec is the planner: Prepare turns the user's options (the flags
// of `sandbox run`, after profiles and environment) into a Spec, validated
// and fully resolved, before anything starts. It reads the host (mounts,
// ids, kernel, drivers, images) and changes nothing: no directory, lock,
// process or environment change happens here; the parent does those.
//
// It may import the mechanism packages, journal and internal/wire (for the
// types init is sent); never parent, initproc or control.
package spec
