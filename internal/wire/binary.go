package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"sandbox/confine"
	fuseoverlay "sandbox/fuse-overlay"
	"sandbox/netns"
	"sandbox/rootfs"
	"sandbox/seccomp/bpf"
)

// The binary forms of the run's hot messages between the parent and init
// (proto.Conn.SendBinary): ChildConfig, NetReady, ChildStarted and
// ChildExit. Both ends are one build (init is embedded in sandbox), so the
// form needs no versioning beyond a mark that refuses anything else.
// Hand-written rather than encoding/json or gob: a fresh init's first JSON
// decode of the config's types cost ~1.2 ms of reflection and page faults,
// the decode ~0.5 ms more, both on every run's critical path; this decodes
// a 65-step configuration in ~20 µs (a warm encoding/json: ~90 µs).
// TestBinaryRoundTrip fills every field of every type by reflection, so a
// field added and not written here fails it.
//
// Integers are varints, strings and byte counts uvarint-prefixed; a slice
// is its length plus one (0: nil, which JSON kept apart from empty where a
// field has no omitempty), a pointer a presence byte. The decoder bounds
// every count by the bytes left, so no input allocates more than a small
// multiple of its own size.

// The first byte of each binary form: it tells the messages apart.
const (
	markConfig  = 0xC1
	markStarted = 0xC2
	markExit    = 0xC3
	markNet     = 0xC4
)

// MarshalBinary is c's binary form.
func (c ChildConfig) MarshalBinary() ([]byte, error) {
	e := newEncoder(markConfig, 4096)
	e.strs(c.Args)
	e.strs(c.Env)
	e.str(c.Hostname)
	e.bool(c.LoopUp)
	if e.present(c.Net != nil) {
		n := c.Net
		e.str(string(n.Mode))
		e.bools(n.CreateTap, n.PersistTap, n.TapByName, n.TapMade, n.Configure, n.BlockLinkLocal)
	}
	if e.present(c.Plan != nil) {
		p := c.Plan
		e.step(&p.Root)
		e.count(p.Steps == nil, len(p.Steps))
		for i := range p.Steps {
			e.step(&p.Steps[i])
		}
		e.bool(p.ReadOnlyRoot)
		e.str(p.Chdir)
		e.str(string(p.Overlay.Driver))
		e.str(p.Overlay.FuseBin)
		e.str(p.Overlay.FuseProblem)
		e.str(p.Overlay.Marker)
		e.str(p.Ephemeral.Dir)
		e.int(p.Ephemeral.Size)
		e.int(p.Ephemeral.Inodes)
	}
	e.bools(c.TTY, c.Verbose, c.Exec, c.SeccompWatch, c.HostnameAsked, c.Report)
	e.uint(uint64(c.Rows))
	e.uint(uint64(c.Cols))
	e.int(int64(c.Umask))
	e.str(c.LogFormat)
	e.int(c.Start)
	e.ints(c.Caps)
	e.int(int64(c.LastCap))
	if e.present(c.Landlock != nil) {
		e.strs(c.Landlock.WritableDirs)
		e.strs(c.Landlock.WritableFiles)
	}
	e.int(int64(c.PreserveFDs))
	if e.present(c.Seccomp != nil) {
		p := c.Seccomp
		e.count(p.Instructions == nil, len(p.Instructions))
		for _, in := range p.Instructions {
			e.uint(uint64(in.Code))
			e.b = append(e.b, in.Jt, in.Jf)
			e.uint(uint64(in.K))
		}
		e.uint(uint64(p.Flags))
	}
	return e.b, nil
}

// UnmarshalBinary sets *c from MarshalBinary's form.
func (c *ChildConfig) UnmarshalBinary(b []byte) error {
	return decode(b, markConfig, "the configuration", c, readConfig)
}

// readConfig reads MarshalBinary's form of a ChildConfig after its mark.
func readConfig(d *decoder) (v ChildConfig) {
	v.Args = d.strs()
	v.Env = d.strs()
	v.Hostname = d.str()
	v.LoopUp = d.bool()
	if d.present() {
		n := &netns.Child{Mode: netns.Mode(d.str())}
		d.bools(&n.CreateTap, &n.PersistTap, &n.TapByName, &n.TapMade, &n.Configure, &n.BlockLinkLocal)
		v.Net = n
	}
	if d.present() {
		p := &rootfs.Plan{}
		d.step(&p.Root)
		if n, ok := d.count(minStep); ok {
			p.Steps = make([]rootfs.Step, n)
			for i := range p.Steps {
				d.step(&p.Steps[i])
			}
		}
		p.ReadOnlyRoot = d.bool()
		p.Chdir = d.str()
		p.Overlay.Driver = fuseoverlay.Driver(d.str())
		p.Overlay.FuseBin = d.str()
		p.Overlay.FuseProblem = d.str()
		p.Overlay.Marker = d.str()
		p.Ephemeral.Dir = d.str()
		p.Ephemeral.Size = d.int()
		p.Ephemeral.Inodes = d.int()
		v.Plan = p
	}
	d.bools(&v.TTY, &v.Verbose, &v.Exec, &v.SeccompWatch, &v.HostnameAsked, &v.Report)
	v.Rows = d.uint16()
	v.Cols = d.uint16()
	v.Umask = d.intn()
	v.LogFormat = d.str()
	v.Start = d.int()
	v.Caps = d.ints()
	v.LastCap = d.intn()
	if d.present() {
		v.Landlock = &confine.LandlockRules{WritableDirs: d.strs(), WritableFiles: d.strs()}
	}
	v.PreserveFDs = d.intn()
	if d.present() {
		p := &bpf.Program{}
		if n, ok := d.count(4); ok {
			if n > bpf.MaxInstructions {
				d.fail(fmt.Errorf("a seccomp program of %d instructions, over %d", n, bpf.MaxInstructions))
				n = 0
			}
			p.Instructions = make([]bpf.Instruction, n)
			for i := range p.Instructions {
				in := &p.Instructions[i]
				in.Code = d.uint16()
				in.Jt, in.Jf = d.byte(), d.byte()
				in.K = d.uint32()
			}
		}
		p.Flags = uint(d.uint())
		v.Seccomp = p
	}
	return v
}

// MarshalBinary is s's binary form.
func (s ChildStarted) MarshalBinary() ([]byte, error) {
	e := newEncoder(markStarted, 64)
	e.int(int64(s.PID))
	if e.present(s.Init != nil) {
		r := s.Init
		e.count(r.Steps == nil, len(r.Steps))
		for _, st := range r.Steps {
			e.int(st.At)
			e.str(st.Msg)
		}
		e.strs(r.Warnings)
		e.count(r.Fallbacks == nil, len(r.Fallbacks))
		for _, f := range r.Fallbacks {
			e.str(f.Area)
			e.str(f.Taken)
			e.str(f.Why)
		}
		e.str(r.Enter)
		e.int(r.Started)
		e.count(r.Overlays == nil, len(r.Overlays))
		for _, o := range r.Overlays {
			e.str(o.Target)
			e.str(string(o.Driver))
		}
	}
	return e.b, nil
}

// UnmarshalBinary sets *s from MarshalBinary's form.
func (s *ChildStarted) UnmarshalBinary(b []byte) error {
	return decode(b, markStarted, "the start message", s, readStarted)
}

// readStarted reads MarshalBinary's form of a ChildStarted after its mark.
func readStarted(d *decoder) (v ChildStarted) {
	v.PID = d.intn()
	if d.present() {
		r := &InitReport{}
		if n, ok := d.count(2); ok {
			r.Steps = make([]TimedStep, n)
			for i := range r.Steps {
				r.Steps[i] = TimedStep{At: d.int(), Msg: d.str()}
			}
		}
		r.Warnings = d.strs()
		if n, ok := d.count(3); ok {
			r.Fallbacks = make([]Fallback, n)
			for i := range r.Fallbacks {
				r.Fallbacks[i] = Fallback{Area: d.str(), Taken: d.str(), Why: d.str()}
			}
		}
		r.Enter = d.str()
		r.Started = d.int()
		if n, ok := d.count(2); ok {
			r.Overlays = make([]rootfs.OverlayUse, n)
			for i := range r.Overlays {
				r.Overlays[i] = rootfs.OverlayUse{Target: d.str(), Driver: fuseoverlay.Driver(d.str())}
			}
		}
		v.Init = r
	}
	return v
}

// MarshalBinary is x's binary form.
func (x ChildExit) MarshalBinary() ([]byte, error) {
	e := newEncoder(markExit, 8)
	e.int(int64(x.Code))
	e.int(int64(x.Signal))
	return e.b, nil
}

// UnmarshalBinary sets *x from MarshalBinary's form.
func (x *ChildExit) UnmarshalBinary(b []byte) error {
	return decode(b, markExit, "the exit message", x, func(d *decoder) ChildExit {
		return ChildExit{Code: d.intn(), Signal: d.intn()}
	})
}

// MarshalBinary is n's binary form.
func (n NetReady) MarshalBinary() ([]byte, error) {
	e := newEncoder(markNet, 2+len(n.Err))
	e.str(n.Err)
	return e.b, nil
}

// UnmarshalBinary sets *n from MarshalBinary's form.
func (n *NetReady) UnmarshalBinary(b []byte) error {
	return decode(b, markNet, "the network's state", n, func(d *decoder) NetReady {
		return NetReady{Err: d.str()}
	})
}

// encoder appends values to b.
type encoder struct{ b []byte }

// newEncoder starts a form with its mark, room for size bytes.
func newEncoder(mark byte, size int) *encoder {
	return &encoder{b: append(make([]byte, 0, size), mark)}
}

func (e *encoder) byte(v byte)          { e.b = append(e.b, v) }
func (e *encoder) uint(v uint64)        { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) int(v int64)          { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) str(s string)         { e.uint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *encoder) bool(v bool)          { e.bools(v) }
func (e *encoder) present(ok bool) bool { e.bool(ok); return ok }

// bools packs up to eight flags into one byte.
func (e *encoder) bools(vs ...bool) {
	var f byte
	for i, v := range vs {
		if v {
			f |= 1 << i
		}
	}
	e.byte(f)
}

// count writes a slice's length: 0 for nil, else n+1.
func (e *encoder) count(isNil bool, n int) {
	if isNil {
		e.uint(0)
		return
	}
	e.uint(uint64(n) + 1)
}

func (e *encoder) strs(ss []string) {
	e.count(ss == nil, len(ss))
	for _, s := range ss {
		e.str(s)
	}
}

func (e *encoder) ints(vs []int) {
	e.count(vs == nil, len(vs))
	for _, v := range vs {
		e.int(int64(v))
	}
}

func (e *encoder) step(s *rootfs.Step) {
	e.str(string(s.Op))
	e.str(s.Target)
	e.str(s.Source)
	e.strs(s.Lower)
	e.str(s.Upper)
	e.str(s.Work)
	e.str(s.Data)
	e.uint(uint64(s.Mode))
	e.bools(s.ReadOnly, s.File, s.Optional)
	e.strs(s.CopyUp)
}

// minStep is the fewest bytes a step takes (nine lengths or values of a
// byte at least, and its flags), which bounds a step count by the bytes
// left.
const minStep = 10

// decoder reads values from b; the first error sticks, and every read
// after it returns a zero value.
type decoder struct {
	b   []byte
	err error
}

var errShort = errors.New("cut short")

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

func (d *decoder) mark(m byte) {
	if len(d.b) == 0 || d.b[0] != m {
		d.fail(errors.New("not its binary form"))
		return
	}
	d.b = d.b[1:]
}

// decode reads b, the form of mark, with read into *dst, which it sets
// only when the whole form was read; errors name what.
func decode[T any](b []byte, mark byte, what string, dst *T, read func(*decoder) T) error {
	d := &decoder{b: b}
	d.mark(mark)
	v := read(d)
	if err := d.end(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	*dst = v
	return nil
}

// end is the first error, or one for bytes left over.
func (d *decoder) end() error {
	if d.err == nil && len(d.b) > 0 {
		d.err = fmt.Errorf("%d bytes left over", len(d.b))
	}
	return d.err
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail(errShort)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) int() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// intn is an int that fits a 32-bit int too (the values are small).
func (d *decoder) intn() int {
	v := d.int()
	if v < math.MinInt32 || v > math.MaxInt32 {
		d.fail(fmt.Errorf("an integer out of range (%d)", v))
		return 0
	}
	return int(v)
}

// uintMax is a uvarint of at most max, a bits-wide field's largest.
func (d *decoder) uintMax(max uint64, bits int) uint64 {
	v := d.uint()
	if v > max {
		d.fail(fmt.Errorf("a %d-bit value out of range (%d)", bits, v))
		return 0
	}
	return v
}

func (d *decoder) uint16() uint16 { return uint16(d.uintMax(math.MaxUint16, 16)) }
func (d *decoder) uint32() uint32 { return uint32(d.uintMax(math.MaxUint32, 32)) }

func (d *decoder) str() string {
	n := d.uint()
	if n > uint64(len(d.b)) {
		d.fail(errShort)
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) bool() bool {
	var v bool
	d.bools(&v)
	return v
}

func (d *decoder) present() bool { return d.bool() }

// bools reads a byte of flags into vs; a bit set beyond them is an error.
func (d *decoder) bools(vs ...*bool) {
	f := d.byte()
	if f>>len(vs) != 0 {
		d.fail(fmt.Errorf("unknown flags %#x", f))
		return
	}
	for i, v := range vs {
		*v = f&(1<<i) != 0
	}
}

// count reads a slice's length; ok is false for nil (or after an error).
// Each element takes at least least bytes, so n is bounded by what is
// left.
func (d *decoder) count(least int) (n int, ok bool) {
	c := d.uint()
	if c == 0 || d.err != nil {
		return 0, false
	}
	if c-1 > uint64(len(d.b)/least) {
		d.fail(fmt.Errorf("a count of %d, over what is left", c-1))
		return 0, false
	}
	return int(c - 1), true
}

func (d *decoder) strs() []string {
	n, ok := d.count(1)
	if !ok {
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = d.str()
	}
	return ss
}

func (d *decoder) ints() []int {
	n, ok := d.count(1)
	if !ok {
		return nil
	}
	vs := make([]int, n)
	for i := range vs {
		vs[i] = d.intn()
	}
	return vs
}

func (d *decoder) step(s *rootfs.Step) {
	s.Op = rootfs.Op(d.str())
	s.Target = d.str()
	s.Source = d.str()
	s.Lower = d.strs()
	s.Upper = d.str()
	s.Work = d.str()
	s.Data = d.str()
	s.Mode = d.uint32()
	d.bools(&s.ReadOnly, &s.File, &s.Optional)
	s.CopyUp = d.strs()
}
