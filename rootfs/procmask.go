package rootfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// ProcMaskedError is a new /proc refused because the /proc this sandbox
// was started under has mounts on its entries (a container's or an outer
// sandbox's masks): the kernel mounts a new proc only where it could show
// nothing that is hidden now. Binding the outer /proc instead would show
// the outer pid namespace's processes, so the run stops here.
type ProcMaskedError struct {
	Masked []string // mount points below /proc
	Err    error
}

func (e *ProcMaskedError) Error() string {
	eg := strings.Join(e.Masked[:min(len(e.Masked), 3)], ", ")
	if len(e.Masked) > 3 {
		eg += ", …"
	}
	return fmt.Sprintf("%v: the kernel mounts a new /proc only where /proc is fully visible, and here %d of its entries (%s) are masked by the container or sandbox this runs in; "+
		"run that one with /proc unmasked (podman/docker: --security-opt unmask=ALL or unmask=/proc/*; Kubernetes: securityContext.procMount: Unmasked; sandbox: --unmask-proc with --allow-nested-userns)",
		e.Err, len(e.Masked), eg)
}

func (e *ProcMaskedError) Unwrap() error { return e.Err }

// ProcMasks lists the mount points below /proc in mountinfo text.
func ProcMasks(mountinfo string) []string {
	var out []string
	for _, l := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(l)
		// binfmt_misc sits on a permanently empty directory: no mask.
		if len(f) > 4 && strings.HasPrefix(f[4], "/proc/") && f[4] != "/proc/sys/fs/binfmt_misc" {
			out = append(out, unescapeOctal(f[4]))
		}
	}
	return out
}

// unescapeOctal undoes mountinfo's \NNN escapes.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range []byte(s[i+1 : i+4]) {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + c - '0'
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountProc mounts a new proc on target; when the kernel refuses it and
// the /proc we came from has masks, the error says which and what to do.
func mountProc(target string, flags uintptr) error {
	err := unix.Mount("proc", target, "proc", flags, "")
	if !errors.Is(err, unix.EPERM) {
		return err
	}
	f, oerr := os.Open("/proc/self/mountinfo")
	if oerr != nil {
		return err
	}
	defer f.Close()
	text, _ := io.ReadAll(io.LimitReader(f, 4<<20))
	if masked := ProcMasks(string(text)); len(masked) > 0 {
		return &ProcMaskedError{Masked: masked, Err: err}
	}
	return err
}
