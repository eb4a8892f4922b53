// Package hostpath finds the host programs sandbox runs (newuidmap,
// newgidmap, getsubids, slirp4netns, pasta, fuse-overlayfs, its own
// helpers) as exec.LookPath does, and, with PATH unset or empty, in the
// system's directories, as execvp(3) falls back to a default search path:
// `env -i sandbox run …` (a CI job's clean environment, a service's) gets
// the sandbox a login shell gets, not one without its helpers.
package hostpath

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Default is the search path when PATH is unset or empty; a sandbox's
// payload gets it then too.
const Default = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Look finds the executable name; a name with a slash is checked as is.
func Look(name string) (string, error) {
	if strings.Contains(name, "/") || os.Getenv("PATH") != "" {
		return exec.LookPath(name)
	}
	for _, dir := range filepath.SplitList(Default) {
		if p, err := exec.LookPath(filepath.Join(dir, name)); err == nil {
			return p, nil
		}
	}
	return "", &exec.Error{Name: name, Err: exec.ErrNotFound}
}

// Searched says where Look looks for a name: for messages such as "X not
// found in …".
func Searched() string {
	if os.Getenv("PATH") != "" {
		return "PATH"
	}
	return Default + " (PATH is not set)"
}
