package cgroups

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Cgroup v2 has no devices.allow: device access is decided by a
// BPF_PROG_TYPE_CGROUP_DEVICE program attached to the cgroup. This file
// turns linux.resources.devices into such a program, assembled by hand
// (a dozen instruction forms), with cgroup v1's meaning, as runc does:
// rules apply in order, a rule for every device ("a", any major and minor,
// rwm) resets the default to its allow and forgets the rules before it,
// the last rule that matches decides, and a rule matches an access only
// when the access asked for is within the rule's.

// devRule is one rule after the resets: Type 0 is any, Major/Minor -1 any,
// Access the BPF_DEVCG_ACC_* bits.
type devRule struct {
	Allow        bool
	Type         uint32 // bpfDevBlock, bpfDevChar or 0
	Major, Minor int64
	Access       uint32
}

// The context's encodings (linux/bpf.h).
const (
	bpfDevBlock = 1
	bpfDevChar  = 2
	bpfAccMknod = 1
	bpfAccRead  = 2
	bpfAccWrite = 4
	bpfAccAll   = bpfAccMknod | bpfAccRead | bpfAccWrite
)

// defaultDevices are allowed after the config's rules, as runc allows
// them: the devices the runtime spec says every container has (null,
// zero, full, random, urandom, tty, console, ptmx and the ptys), the tun
// device, and mknod of any node (opening it is another matter).
var defaultDevices = []devRule{
	{true, bpfDevChar, -1, -1, bpfAccMknod},
	{true, bpfDevBlock, -1, -1, bpfAccMknod},
	{true, bpfDevChar, 1, 3, bpfAccAll},    // null
	{true, bpfDevChar, 1, 5, bpfAccAll},    // zero
	{true, bpfDevChar, 1, 7, bpfAccAll},    // full
	{true, bpfDevChar, 1, 8, bpfAccAll},    // random
	{true, bpfDevChar, 1, 9, bpfAccAll},    // urandom
	{true, bpfDevChar, 5, 0, bpfAccAll},    // tty
	{true, bpfDevChar, 5, 1, bpfAccAll},    // console
	{true, bpfDevChar, 5, 2, bpfAccAll},    // ptmx
	{true, bpfDevChar, 136, -1, bpfAccAll}, // pts/*
	{true, bpfDevChar, 10, 200, bpfAccAll}, // net/tun
}

// deviceRules applies the resets to the config's rules (checked by
// checkDevices) followed by the defaults; the default is deny.
func deviceRules(spec []specs.LinuxDeviceCgroup) (defaultAllow bool, rules []devRule) {
	for _, d := range spec {
		r := devRule{Allow: d.Allow, Major: -1, Minor: -1}
		switch d.Type {
		case "b":
			r.Type = bpfDevBlock
		case "c":
			r.Type = bpfDevChar
		}
		if d.Major != nil {
			r.Major = *d.Major
		}
		if d.Minor != nil {
			r.Minor = *d.Minor
		}
		for _, c := range d.Access {
			r.Access |= map[rune]uint32{'m': bpfAccMknod, 'r': bpfAccRead, 'w': bpfAccWrite}[c]
		}
		if d.Access == "" {
			r.Access = bpfAccAll
		}
		if r.Type == 0 && r.Major == -1 && r.Minor == -1 && r.Access == bpfAccAll {
			defaultAllow, rules = r.Allow, nil
			continue
		}
		rules = append(rules, r)
	}
	return defaultAllow, append(rules, defaultDevices...)
}

// insn is one eBPF instruction (struct bpf_insn).
type insn struct {
	Code uint8
	Regs uint8 // dst | src<<4
	Off  int16
	Imm  int32
}

// The instruction forms the filter uses.
const (
	ldxW     = unix.BPF_LDX | unix.BPF_MEM | unix.BPF_W   // dst = *(u32 *)(src + off)
	and32K   = unix.BPF_ALU | unix.BPF_AND | unix.BPF_K   // wdst &= imm
	rsh32K   = unix.BPF_ALU | unix.BPF_RSH | unix.BPF_K   // wdst >>= imm
	mov32X   = unix.BPF_ALU | unix.BPF_MOV | unix.BPF_X   // wdst = wsrc
	mov64K   = unix.BPF_ALU64 | unix.BPF_MOV | unix.BPF_K // dst = imm
	jne32K   = unix.BPF_JMP32 | unix.BPF_JNE | unix.BPF_K // if wdst != imm goto +off
	jne32X   = unix.BPF_JMP32 | unix.BPF_JNE | unix.BPF_X // if wdst != wsrc goto +off
	exitInsn = unix.BPF_JMP | unix.BPF_EXIT
)

// deviceProgram assembles the filter. Registers: r1 the context, then a
// scratch; r2 the device type, r3 the access, r4 major, r5 minor. The
// rules are tried last first; each block jumps to the next block when the
// rule does not match and returns its verdict when it does.
func deviceProgram(defaultAllow bool, rules []devRule) []insn {
	reg := func(dst, src uint8) uint8 { return dst | src<<4 }
	prog := []insn{
		{ldxW, reg(2, 1), 0, 0},
		{and32K, reg(2, 0), 0, 0xffff},
		{ldxW, reg(3, 1), 0, 0},
		{rsh32K, reg(3, 0), 0, 16},
		{ldxW, reg(4, 1), 4, 0},
		{ldxW, reg(5, 1), 8, 0},
	}
	verdict := func(allow bool) []insn {
		v := int32(0)
		if allow {
			v = 1
		}
		return []insn{{mov64K, reg(0, 0), 0, v}, {exitInsn, 0, 0, 0}}
	}
	for i := len(rules) - 1; i >= 0; i-- {
		r := rules[i]
		// Tests with Off to be set to the distance to the block's end.
		var block []insn
		if r.Type != 0 {
			block = append(block, insn{jne32K, reg(2, 0), 0, int32(r.Type)})
		}
		if r.Access != bpfAccAll {
			block = append(block,
				insn{mov32X, reg(1, 3), 0, 0},
				insn{and32K, reg(1, 0), 0, int32(r.Access)},
				insn{jne32X, reg(1, 3), 0, 0})
		}
		if r.Major != -1 {
			block = append(block, insn{jne32K, reg(4, 0), 0, int32(uint32(r.Major))})
		}
		if r.Minor != -1 {
			block = append(block, insn{jne32K, reg(5, 0), 0, int32(uint32(r.Minor))})
		}
		block = append(block, verdict(r.Allow)...)
		for j := range block {
			if block[j].Code == jne32K || block[j].Code == jne32X {
				block[j].Off = int16(len(block) - j - 1)
			}
		}
		prog = append(prog, block...)
	}
	return append(prog, verdict(defaultAllow)...)
}

// attachDevices is attachDeviceFilter; the tests over a fake tree replace it.
var attachDevices = attachDeviceFilter

// attachDeviceFilter loads the program for rules and attaches it to the
// cgroup at dir (BPF_F_ALLOW_MULTI: a nested runtime's programs add
// restrictions, never lift these). The program lives as long as the cgroup.
func attachDeviceFilter(dir string, spec []specs.LinuxDeviceCgroup) error {
	prog := deviceProgram(deviceRules(spec))
	if len(prog) > 4096 {
		return fmt.Errorf("linux.resources.devices: the rules make a program of %d instructions, more than 4096", len(prog))
	}
	fd, err := loadProgram(prog)
	if err != nil {
		return fmt.Errorf("linux.resources.devices: loading the cgroup device program: %w", err)
	}
	defer unix.Close(fd)
	cg, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("linux.resources.devices: %w", err)
	}
	defer cg.Close()
	attach := struct{ TargetFd, AttachBpfFd, AttachType, AttachFlags, ReplaceBpfFd uint32 }{
		TargetFd: uint32(cg.Fd()), AttachBpfFd: uint32(fd), AttachType: unix.BPF_CGROUP_DEVICE, AttachFlags: unix.BPF_F_ALLOW_MULTI,
	}
	if _, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_ATTACH, uintptr(unsafe.Pointer(&attach)), unsafe.Sizeof(attach)); errno != 0 {
		return fmt.Errorf("linux.resources.devices: attaching the device program to %s: %w", dir, errno)
	}
	return nil
}

// loadProgram loads a cgroup device program; when the kernel refuses it,
// again with the verifier's log, for the message.
func loadProgram(prog []insn) (int, error) {
	license := []byte("Apache-2.0\x00")
	var logBuf []byte
	for {
		load := struct {
			ProgType, InsnCnt   uint32
			Insns, License      uint64
			LogLevel, LogSize   uint32
			LogBuf              uint64
			KernVersion, Flags  uint32
			Name                [16]byte
			Ifindex, AttachType uint32
		}{
			ProgType: unix.BPF_PROG_TYPE_CGROUP_DEVICE, InsnCnt: uint32(len(prog)),
			Insns:      uint64(uintptr(unsafe.Pointer(&prog[0]))),
			License:    uint64(uintptr(unsafe.Pointer(&license[0]))),
			AttachType: unix.BPF_CGROUP_DEVICE,
		}
		if logBuf != nil {
			load.LogLevel, load.LogSize, load.LogBuf = 1, uint32(len(logBuf)), uint64(uintptr(unsafe.Pointer(&logBuf[0])))
		}
		copy(load.Name[:], "sbx_oci_devices")
		fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, uintptr(unsafe.Pointer(&load)), unsafe.Sizeof(load))
		runtime.KeepAlive(prog)
		runtime.KeepAlive(license)
		runtime.KeepAlive(logBuf)
		if errno == 0 {
			return int(fd), nil
		}
		if logBuf == nil && errno != unix.EPERM {
			logBuf = make([]byte, 1<<16)
			continue
		}
		if i := bytes.IndexByte(logBuf, 0); i >= 0 {
			logBuf = logBuf[:i]
		}
		return -1, fmt.Errorf("%w %s", errno, bytes.TrimSpace(logBuf))
	}
}
