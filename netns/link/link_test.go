package link

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"sandbox/internal/testenv"
	"sandbox/netns"

	"golang.org/x/sys/unix"
)

// childEnv makes the test binary run inside() instead of the tests.
const childEnv = "SANDBOX_LINK_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		if err := inside(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestChildSide runs what init does for a tap driver in a new user and
// network namespace, as init would, and checks the result there.
func TestChildSide(t *testing.T) {
	testenv.RequireOrSkip(t, unix.Access("/dev/net/tun", unix.R_OK|unix.W_OK) == nil, "a usable /dev/net/tun")
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
		Pdeathsig:   syscall.SIGKILL,
	}
	done := make(chan struct{})
	timer := time.AfterFunc(30*time.Second, func() {
		if cmd.Process != nil {
			cmd.Process.Kill()
		}
		close(done)
	})
	out, err := cmd.CombinedOutput()
	if !timer.Stop() {
		<-done
		t.Fatal("the child did not finish within 30s")
	}
	if err != nil {
		t.Fatalf("inside a new network namespace: %v\n%s", err, out)
	}
}

// inside sets up lo, the link-local block and a configured tap, and checks
// each; it runs as root of a fresh user namespace in a fresh netns.
func inside() error {
	if err := LoopbackUp(); err != nil {
		return fmt.Errorf("LoopbackUp: %w", err)
	}
	if err := Prohibit(netns.LinkLocal); err != nil {
		return fmt.Errorf("Prohibit: %w", err)
	}
	tap, err := CreateTap(netns.TapName, false)
	if err != nil {
		return fmt.Errorf("CreateTap: %w", err)
	}
	defer tap.Close()
	if err := Configure(netns.TapName, netns.SandboxIP, netns.PrefixLen, netns.GatewayIP, netns.MTU); err != nil {
		return fmt.Errorf("Configure: %w", err)
	}
	var bad []string
	lo, err := net.InterfaceByName("lo")
	if err != nil || lo.Flags&net.FlagUp == 0 {
		bad = append(bad, fmt.Sprintf("lo is not up (%v)", err))
	}
	ifc, err := net.InterfaceByName(netns.TapName)
	if err != nil {
		return err
	}
	if ifc.Flags&net.FlagUp == 0 || ifc.MTU != netns.MTU {
		bad = append(bad, fmt.Sprintf("%s: flags %v, MTU %d; want up, MTU %d", netns.TapName, ifc.Flags, ifc.MTU, netns.MTU))
	}
	addrs, _ := ifc.Addrs()
	want, v4 := fmt.Sprintf("%s/%d", netns.SandboxIP, netns.PrefixLen), 0
	for _, a := range addrs {
		if a.(*net.IPNet).IP.To4() != nil {
			v4++
			if a.String() != want {
				v4 = -1
			}
		}
	}
	if v4 != 1 {
		bad = append(bad, fmt.Sprintf("%s has addresses %v, want %s", netns.TapName, addrs, want))
	}
	routes, _ := os.ReadFile("/proc/self/net/route")
	// The default route: destination 0, gateway 10.0.2.2 (little-endian hex).
	if !strings.Contains(string(routes), netns.TapName+"\t00000000\t0202000A") {
		bad = append(bad, "no default route via "+netns.GatewayIP+":\n"+string(routes))
	}
	c, err := net.DialTimeout("tcp", "169.254.169.254:80", 5*time.Second)
	if err == nil {
		c.Close()
	}
	if !errors.Is(err, unix.EACCES) {
		bad = append(bad, fmt.Sprintf("connecting to 169.254.169.254: %v, want EACCES from the prohibit route", err))
	}
	// A persistent tap outlives its file (slirp4netns attaches by name).
	p, err := CreateTap("tap1", true)
	if err != nil {
		return fmt.Errorf("CreateTap persistent: %w", err)
	}
	p.Close()
	if _, err := net.InterfaceByName("tap1"); err != nil {
		bad = append(bad, "the persistent tap is gone once its file is closed")
	}
	if err := Configure(netns.TapName, "::1", 64, netns.GatewayIP, 0); err == nil {
		bad = append(bad, "Configure accepted an IPv6 address")
	}
	if err := Prohibit("fe80::/10"); err == nil {
		bad = append(bad, "Prohibit accepted an IPv6 prefix")
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "\n"))
	}
	return nil
}
