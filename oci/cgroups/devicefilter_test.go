package cgroups

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// run interprets the filter's instruction forms over one access, as the
// kernel would (the real kernel's verdicts: e2e/ociroot).
func run(t *testing.T, prog []insn, typ, access, major, minor uint32) bool {
	t.Helper()
	ctx := [3]uint32{typ | access<<16, major, minor}
	var r [11]uint64
	for pc, steps := 0, 0; steps < 10000; steps++ {
		if pc < 0 || pc >= len(prog) {
			t.Fatalf("pc %d outside the program (%d instructions)", pc, len(prog))
		}
		in := prog[pc]
		dst, src := in.Regs&0xf, in.Regs>>4
		pc++
		switch in.Code {
		case ldxW:
			if src != 1 || in.Off%4 != 0 || in.Off < 0 || in.Off > 8 {
				t.Fatalf("load from r%d%+d", src, in.Off)
			}
			r[dst] = uint64(ctx[in.Off/4])
		case and32K:
			r[dst] = uint64(uint32(r[dst]) & uint32(in.Imm))
		case rsh32K:
			r[dst] = uint64(uint32(r[dst]) >> uint32(in.Imm))
		case mov32X:
			r[dst] = uint64(uint32(r[src]))
		case mov64K:
			r[dst] = uint64(int64(in.Imm))
		case jne32K:
			if uint32(r[dst]) != uint32(in.Imm) {
				pc += int(in.Off)
			}
		case jne32X:
			if uint32(r[dst]) != uint32(r[src]) {
				pc += int(in.Off)
			}
		case exitInsn:
			return r[0] == 1
		default:
			t.Fatalf("unknown instruction %#x", in.Code)
		}
	}
	t.Fatal("the program does not end")
	return false
}

func dev(allow bool, typ string, major, minor int64, access string) specs.LinuxDeviceCgroup {
	d := specs.LinuxDeviceCgroup{Allow: allow, Type: typ, Access: access}
	if major != -1 {
		d.Major = &major
	}
	if minor != -1 {
		d.Minor = &minor
	}
	return d
}

func TestDeviceProgram(t *testing.T) {
	const c, b = bpfDevChar, bpfDevBlock
	const m, r, w = bpfAccMknod, bpfAccRead, bpfAccWrite
	for _, tc := range []struct {
		name  string
		rules []specs.LinuxDeviceCgroup
		typ   uint32
		acc   uint32
		maj   uint32
		min   uint32
		allow bool
	}{
		// runc spec's default: deny all, then the defaults.
		{"null", []specs.LinuxDeviceCgroup{dev(false, "a", -1, -1, "rwm")}, c, r | w, 1, 3, true},
		{"urandom", []specs.LinuxDeviceCgroup{dev(false, "a", -1, -1, "rwm")}, c, r, 1, 9, true},
		{"pts 7", []specs.LinuxDeviceCgroup{dev(false, "a", -1, -1, "rwm")}, c, r | w, 136, 7, true},
		{"kmsg", []specs.LinuxDeviceCgroup{dev(false, "a", -1, -1, "rwm")}, c, r, 1, 11, false},
		{"mem", []specs.LinuxDeviceCgroup{dev(false, "a", -1, -1, "rwm")}, c, r | w, 1, 1, false},
		{"sda read", []specs.LinuxDeviceCgroup{dev(false, "a", -1, -1, "rwm")}, b, r, 8, 0, false},
		{"sda mknod", []specs.LinuxDeviceCgroup{dev(false, "a", -1, -1, "rwm")}, b, m, 8, 0, true},
		{"no rules: deny by default", nil, c, r, 1, 11, false},
		// An allow after the reset.
		{"allowed kmsg", []specs.LinuxDeviceCgroup{dev(false, "", -1, -1, ""), dev(true, "c", 1, 11, "r")}, c, r, 1, 11, true},
		{"allowed kmsg, write asked", []specs.LinuxDeviceCgroup{dev(false, "", -1, -1, ""), dev(true, "c", 1, 11, "r")}, c, w, 1, 11, false},
		{"allowed kmsg is a char device", []specs.LinuxDeviceCgroup{dev(false, "a", -1, -1, "rwm"), dev(true, "c", 1, 11, "r")}, b, r, 1, 11, false},
		{"wildcard minor", []specs.LinuxDeviceCgroup{dev(false, "a", -1, -1, "rwm"), dev(true, "b", 8, -1, "rw")}, b, r | w, 8, 17, true},
		{"wildcard major", []specs.LinuxDeviceCgroup{dev(false, "a", -1, -1, "rwm"), dev(true, "c", -1, 4, "r")}, c, r, 250, 4, true},
		// privileged: allow all.
		{"allow all", []specs.LinuxDeviceCgroup{dev(true, "a", -1, -1, "rwm")}, b, r | w, 8, 0, true},
		// A reset forgets what came before it; the last match wins.
		{"reset forgets", []specs.LinuxDeviceCgroup{dev(true, "c", 1, 11, "rwm"), dev(false, "a", -1, -1, "rwm")}, c, r, 1, 11, false},
		{"last match wins", []specs.LinuxDeviceCgroup{dev(true, "a", -1, -1, "rwm"), dev(false, "c", 1, 3, "rwm")}, c, r, 1, 3, true},
		{"deny after allow all", []specs.LinuxDeviceCgroup{dev(true, "a", -1, -1, "rwm"), dev(false, "b", 8, 0, "rwm")}, b, r, 8, 0, false},
		{"large minor", []specs.LinuxDeviceCgroup{dev(false, "a", -1, -1, "rwm"), dev(true, "c", 511, 1<<20, "rw")}, c, r, 511, 1 << 20, true},
	} {
		prog := deviceProgram(deviceRules(tc.rules))
		if got := run(t, prog, tc.typ, tc.acc, tc.maj, tc.min); got != tc.allow {
			t.Errorf("%s: allow %v, want %v", tc.name, got, tc.allow)
		}
	}
}
