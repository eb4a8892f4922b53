// Package link is init's side of a sandbox's network: run in sandbox-init,
// root in the sandbox's user namespace and inside its new network namespace,
// it brings up lo, creates the tap, gives it its address and default route,
// and adds prohibit routes, with ioctls and rtnetlink (no ip(8), no
// library). It may import only the standard library, golang.org/x/sys and
// sandbox/netns: init links it, and must not link any driver's dependencies.
package link

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"unsafe"

	"sandbox/netns"

	"golang.org/x/sys/unix"
)

// CreateTap creates the tap interface name in the current network namespace
// and returns its queue; the interface lives as long as that file is open
// somewhere (the builtin driver's helper gets it over SCM_RIGHTS), or, when
// persist, until the namespace goes.
func CreateTap(name string, persist bool) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("opening /dev/net/tun: %w (%s)", err, netns.TunAdvice)
		}
		return nil, fmt.Errorf("opening /dev/net/tun: %w (load the tun module: modprobe tun)", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("creating tap %s: %w", name, err)
	}
	if persist {
		if err := unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 1); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("making tap %s persistent: %w", name, err)
		}
	}
	return os.NewFile(uintptr(fd), "/dev/net/tun:"+name), nil
}

// Configure sets the MTU of the interface name, brings it up, gives it
// ip/prefix and a default route through gateway.
func Configure(name, ip string, prefix int, gateway string, mtu int) error {
	addr, err1 := netip.ParseAddr(ip)
	gw, err2 := netip.ParseAddr(gateway)
	if err1 != nil || err2 != nil || !addr.Is4() || !gw.Is4() {
		return fmt.Errorf("configuring %s: %q or %q is not an IPv4 address", name, ip, gateway)
	}
	index, err := ifIndex(name)
	if err != nil {
		return fmt.Errorf("finding %s: %w", name, err)
	}
	if err := setMTUUp(name, mtu); err != nil {
		return fmt.Errorf("bringing up %s: %w", name, err)
	}
	a4, g4 := addr.As4(), gw.As4()
	if err := addAddr(index, a4[:], prefix); err != nil {
		return fmt.Errorf("adding %s/%d to %s: %w", ip, prefix, name, err)
	}
	if err := addRoute(unix.RTN_UNICAST, nil, 0, g4[:], index); err != nil {
		return fmt.Errorf("adding the default route via %s: %w", gateway, err)
	}
	return nil
}

// Prohibit makes cidr (IPv4) unreachable from this namespace: connections get
// EACCES. The payload cannot remove the route without CAP_NET_ADMIN.
func Prohibit(cidr string) error {
	n, err := netip.ParsePrefix(cidr)
	if err != nil || !n.Addr().Is4() {
		return fmt.Errorf("prohibit route: %q is not an IPv4 prefix", cidr)
	}
	n = n.Masked()
	dst := n.Addr().As4()
	if err := addRoute(unix.RTN_PROHIBIT, dst[:], n.Bits(), nil, 0); err != nil {
		return fmt.Errorf("adding a prohibit route for %s: %w", cidr, err)
	}
	return nil
}

// LoopbackUp sets IFF_UP on lo.
func LoopbackUp() error {
	return setMTUUp("lo", 0)
}

// ifIndex is the index of the interface name.
func ifIndex(name string) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, err
	}
	return int(ifr.Uint32()), nil
}

func setMTUUp(name string, mtu int) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if mtu > 0 {
		ifr.SetUint32(uint32(mtu))
		if err := unix.IoctlIfreq(fd, unix.SIOCSIFMTU, ifr); err != nil {
			return fmt.Errorf("setting MTU %d: %w", mtu, err)
		}
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// rtattr appends one netlink attribute.
func rtattr(b []byte, typ uint16, data []byte) []byte {
	l := unix.SizeofRtAttr + len(data)
	hdr := unix.RtAttr{Len: uint16(l), Type: typ}
	b = append(b, (*[unix.SizeofRtAttr]byte)(unsafe.Pointer(&hdr))[:]...)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func addAddr(index int, ip []byte, prefix int) error {
	msg := unix.IfAddrmsg{Family: unix.AF_INET, Prefixlen: uint8(prefix), Index: uint32(index)}
	body := append([]byte(nil), (*[unix.SizeofIfAddrmsg]byte)(unsafe.Pointer(&msg))[:]...)
	body = rtattr(body, unix.IFA_LOCAL, ip)
	body = rtattr(body, unix.IFA_ADDRESS, ip)
	return request(unix.RTM_NEWADDR, body)
}

func addRoute(typ uint8, dst []byte, dstLen int, gw []byte, oif int) error {
	msg := unix.RtMsg{
		Family: unix.AF_INET, Dst_len: uint8(dstLen), Table: unix.RT_TABLE_MAIN,
		Protocol: unix.RTPROT_STATIC, Scope: unix.RT_SCOPE_UNIVERSE, Type: typ,
	}
	body := append([]byte(nil), (*[unix.SizeofRtMsg]byte)(unsafe.Pointer(&msg))[:]...)
	if dst != nil {
		body = rtattr(body, unix.RTA_DST, dst)
	}
	if gw != nil {
		body = rtattr(body, unix.RTA_GATEWAY, gw)
	}
	if oif > 0 {
		o := uint32(oif)
		body = rtattr(body, unix.RTA_OIF, (*[4]byte)(unsafe.Pointer(&o))[:])
	}
	return request(unix.RTM_NEWROUTE, body)
}

// request sends one rtnetlink request and waits for its acknowledgement.
func request(typ uint16, body []byte) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	hdr := unix.NlMsghdr{
		Len:   uint32(unix.SizeofNlMsghdr + len(body)),
		Type:  typ,
		Flags: unix.NLM_F_REQUEST | unix.NLM_F_ACK | unix.NLM_F_CREATE | unix.NLM_F_EXCL,
		Seq:   1,
	}
	msg := append((*[unix.SizeofNlMsghdr]byte)(unsafe.Pointer(&hdr))[:], body...)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return err
	}
	// The reply is one NLMSG_ERROR: a header, then the error code (0: ack).
	if n < unix.SizeofNlMsghdr+4 {
		return errors.New("short reply from the kernel")
	}
	reply := (*unix.NlMsghdr)(unsafe.Pointer(&buf[0]))
	if reply.Type == unix.NLMSG_ERROR {
		if code := *(*int32)(unsafe.Pointer(&buf[unix.SizeofNlMsghdr])); code != 0 {
			return unix.Errno(-code)
		}
		return nil
	}
	return errors.New("no acknowledgement from the kernel")
}
