package egress

import (
	"net/netip"
	"slices"
	"sync"
	"time"
)

// MinTTL is the least time an answer keeps its addresses allowed: clients
// and their libraries cache answers beyond short TTLs.
const MinTTL = 60 * time.Second

// maxTTL caps an answer's lifetime (a day-long TTL would keep an address
// open long after the name moved).
const maxTTL = time.Hour

// maxAddrs bounds the table; the sandbox's own lookups fill it.
const maxAddrs = 4096

// Table holds the addresses allowed names resolved to, each with the
// names and until when: an address stays allowed while an answer for it is
// valid or a connection to it lasts (Hold).
type Table struct {
	mu     sync.Mutex
	now    func() time.Time
	byAddr map[netip.Addr]map[string]*entry
}

type entry struct {
	until time.Time
	conns int
}

// NewTable is an empty table on clock now.
func NewTable(now func() time.Time) *Table {
	return &Table{now: now, byAddr: map[netip.Addr]map[string]*entry{}}
}

// Learn records that name resolved to addrs, valid for ttl.
func (t *Table) Learn(name string, addrs []netip.Addr, ttl time.Duration) {
	name = NormalName(name)
	ttl = min(max(ttl, MinTTL), maxTTL)
	t.mu.Lock()
	defer t.mu.Unlock()
	until := t.now().Add(ttl)
	for _, a := range addrs {
		a = a.Unmap()
		names := t.byAddr[a]
		if names == nil {
			if len(t.byAddr) >= maxAddrs {
				t.pruneLocked()
				if len(t.byAddr) >= maxAddrs {
					return // full of live entries: the lookup's connection is refused
				}
			}
			names = map[string]*entry{}
			t.byAddr[a] = names
		}
		if e := names[name]; e != nil {
			e.until = later(e.until, until)
		} else {
			names[name] = &entry{until: until}
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// pruneLocked drops the expired entries without connections.
func (t *Table) pruneLocked() {
	now := t.now()
	for a, names := range t.byAddr {
		for n, e := range names {
			if e.conns == 0 && now.After(e.until) {
				delete(names, n)
			}
		}
		if len(names) == 0 {
			delete(t.byAddr, a)
		}
	}
}

// Names are the names that resolved to a and still hold it, sorted.
func (t *Table) Names(a netip.Addr) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var out []string
	for n, e := range t.byAddr[a.Unmap()] {
		if e.conns > 0 || !now.After(e.until) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// Hold keeps a's entries for names alive until the returned release is
// called (a connection's lifetime).
func (t *Table) Hold(a netip.Addr, names []string) (release func()) {
	a = a.Unmap()
	t.mu.Lock()
	defer t.mu.Unlock()
	var held []*entry
	for _, n := range names {
		if e := t.byAddr[a][n]; e != nil {
			e.conns++
			held = append(held, e)
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			t.mu.Lock()
			defer t.mu.Unlock()
			for _, e := range held {
				e.conns--
			}
		})
	}
}
