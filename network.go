package sandbox

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"sandbox/netns"
	"sandbox/netns/driver"

	"golang.org/x/sys/unix"
)

// NetstackELF is the builtin network driver's helper executable, embedded
// by cmd/sandbox when built with scripts/build.sh (nil otherwise: the
// helper is then looked up next to the executable and in PATH).
var NetstackELF []byte

// netstackName is the helper's name on disk.
const netstackName = "sandbox-netstack"

// planNetwork resolves --net and its companions into s.
func planNetwork(opts Options, s *Spec) error {
	mode, err := netns.ParseMode(opts.Net)
	if err != nil {
		return usagef("--net: %v", err)
	}
	var pubs []netns.Publish
	for _, p := range opts.Publish {
		pub, err := netns.ParsePublish(p)
		if err != nil {
			return usagef("--publish %v", err)
		}
		pubs = append(pubs, pub)
	}
	chosen, err := driver.RealHost(HaveNetstack()).Choose(mode, pubs, opts.AllowHostLoopback)
	if err != nil {
		if mode != netns.Auto {
			return &UsageError{err.Error()}
		}
		s.Warnings = append(s.Warnings, fmt.Sprintf("sandbox: warning: no network (running as --net=none): %v", err))
		s.Log.Fallback("network", "--net=none", err.Error())
	}
	s.NetMode = chosen
	s.NetNS = chosen != netns.Host
	if len(pubs) > 0 && (chosen == netns.None || chosen == netns.Host) {
		return usagef("--publish needs a user-mode network (--net=auto, pasta, slirp4netns or builtin), not --net=%s", chosen)
	}
	if chosen == netns.None || chosen == netns.Host {
		return nil
	}
	s.Net = &driver.Config{
		Mode: chosen, AllowHostLoopback: opts.AllowHostLoopback, AllowLinkLocal: opts.AllowLinkLocal,
		Publish: pubs,
	}
	return nil
}

// networkFiles is the content of /etc/hosts and /etc/resolv.conf for s.
func networkFiles(s *Spec) (hosts, resolv string) {
	hosts = hostsFile(s.Hostname, !s.NetNS)
	if s.Net != nil && s.Net.AllowHostLoopback {
		hosts += netns.HostLoopback + "\t" + netns.HostAlias + "\n"
	}
	if s.Net == nil && s.NetNS {
		return hosts, "" // --net=none: no DNS to point at
	}
	hostResolv, _ := os.ReadFile("/etc/resolv.conf") // follows a stub symlink
	if s.Net != nil {
		return hosts, netns.ResolvConf(s.Net.Nameserver(), hostResolv)
	}
	// --net=host: the host's own, as a file (a symlink into /run would
	// dangle inside, where /run is empty).
	return hosts, string(hostResolv)
}

func HaveNetstack() bool {
	if NetstackELF != nil {
		return true
	}
	_, err := netstackPath()
	return err == nil
}

// netstackPath finds a separately installed helper.
func netstackPath() (string, error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), netstackName)
		if unix.Access(p, unix.X_OK) == nil {
			return p, nil
		}
	}
	return exec.LookPath(netstackName)
}

// netstackCommand is the path that starts the helper and a file to close
// once it has started (the sealed memfd holding the embedded copy).
func netstackCommand() (string, io.Closer, error) {
	if NetstackELF == nil {
		p, err := netstackPath()
		if err != nil {
			return "", nil, nil // Start reports the missing helper
		}
		return p, nil, nil
	}
	fd, err := unix.MemfdCreate(netstackName, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return "", nil, fmt.Errorf("memfd for the network helper: %w", err)
	}
	f := os.NewFile(uintptr(fd), netstackName)
	if _, err := f.Write(NetstackELF); err != nil {
		f.Close()
		return "", nil, fmt.Errorf("writing the network helper: %w", err)
	}
	// Sealed: nothing can change the code between here and its exec.
	unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_SEAL|unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE)
	// The child execs its own inherited copy of the fd; CLOEXEC closes it
	// once the exec has opened the file.
	return fmt.Sprintf("/proc/self/fd/%d", fd), f, nil
}
