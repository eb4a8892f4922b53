package parent

import (
	"fmt"
	"io"
	"os"

	"sandbox/spec"

	"golang.org/x/sys/unix"
)

// netstackCommand is the path that starts the helper and a file to close
// once it has started (the sealed memfd holding the embedded copy).
func netstackCommand() (string, io.Closer, error) {
	if spec.NetstackELF == nil {
		p, err := spec.NetstackPath()
		if err != nil {
			return "", nil, nil // Start reports the missing helper
		}
		return p, nil, nil
	}
	fd, err := unix.MemfdCreate(spec.NetstackName, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return "", nil, fmt.Errorf("memfd for the network helper: %w", err)
	}
	f := os.NewFile(uintptr(fd), spec.NetstackName)
	if _, err := f.Write(spec.NetstackELF); err != nil {
		f.Close()
		return "", nil, fmt.Errorf("writing the network helper: %w", err)
	}
	// Sealed: nothing can change the code between here and its exec.
	unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_SEAL|unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE)
	// The child execs its own inherited copy of the fd; CLOEXEC closes it
	// once the exec has opened the file.
	return fmt.Sprintf("/proc/self/fd/%d", fd), f, nil
}
