package egress

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Protocols of a Record.
const (
	TCP  = "tcp"
	UDP  = "udp"
	DNS  = "dns"
	ICMP = "icmp"
)

// Record is one blocked attempt.
type Record struct {
	Time   time.Time `json:"time"`
	Proto  string    `json:"proto"` // TCP, UDP, ICMP or DNS (a refused lookup)
	Dst    string    `json:"dst"`   // the address asked for (a lookup's: the resolver's)
	Port   uint16    `json:"port"`
	Name   string    `json:"name,omitempty"` // the name asked for or the address is known by
	Reason string    `json:"reason"`
}

// Target is how the record's destination reads in the exit summary:
// NAME (dns), IP (icmp), NAME-or-IP:PORT, NAME-or-IP:PORT/udp.
func (r *Record) Target() string {
	switch r.Proto {
	case DNS:
		return r.Name + " (dns)"
	case ICMP:
		return r.Dst + " (icmp)"
	}
	host := r.Name
	if host == "" {
		host = r.Dst
	}
	t := host + ":" + strconv.Itoa(int(r.Port))
	if r.Proto == UDP {
		t += "/udp"
	}
	return t
}

// Limits of what a Log keeps.
const (
	MaxRecords = 100 // records kept in full, the first ones
	maxTargets = 256 // distinct targets counted for the summary
)

// Log collects the blocked attempts of one sandbox. It is safe for
// concurrent use.
type Log struct {
	mu      sync.Mutex
	blocked Blocked
	counts  map[string]int
}

// Blocked is what a Log holds: the report's network.blocked.
type Blocked struct {
	Count   int      `json:"count"`
	Records []Record `json:"records"`
	Dropped int      `json:"dropped"` // records beyond MaxRecords
	// Targets count the attempts by Target, in first-seen order (the
	// exit summary's items).
	Targets []TargetCount `json:"targets"`
	// Other counts the attempts on targets beyond the first maxTargets.
	Other int `json:"targets_dropped"`
}

// TargetCount is one summary item.
type TargetCount struct {
	Target string `json:"target"`
	Count  int    `json:"count"`
}

// Add records r; it returns whether r was kept in full.
func (l *Log) Add(r Record) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counts == nil {
		l.counts = map[string]int{}
	}
	l.blocked.Count++
	t := r.Target()
	if i, ok := l.counts[t]; ok {
		l.blocked.Targets[i].Count++
	} else if len(l.blocked.Targets) < maxTargets {
		l.counts[t] = len(l.blocked.Targets)
		l.blocked.Targets = append(l.blocked.Targets, TargetCount{Target: t, Count: 1})
	} else {
		l.blocked.Other++
	}
	if len(l.blocked.Records) >= MaxRecords {
		l.blocked.Dropped++
		return false
	}
	l.blocked.Records = append(l.blocked.Records, r)
	return true
}

// Snapshot is a copy of what l holds.
func (l *Log) Snapshot() Blocked {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.blocked
	b.Records = append([]Record{}, b.Records...)
	b.Targets = append([]TargetCount{}, b.Targets...)
	return b
}

// summaryItems bounds the exit summary's list.
const summaryItems = 10

// Summary is the exit line's text: "blocked 3 attempts: evil.example:443 ×2,
// 203.0.113.9:22"; "" when nothing was blocked.
func (b *Blocked) Summary() string {
	if b.Count == 0 {
		return ""
	}
	var items []string
	for i, t := range b.Targets {
		if i == summaryItems {
			break
		}
		s := t.Target
		if t.Count > 1 {
			s += " ×" + strconv.Itoa(t.Count)
		}
		items = append(items, s)
	}
	more := len(b.Targets) - len(items)
	if more > 0 || b.Other > 0 {
		items = append(items, fmt.Sprintf("… (%d more)", more+b.Other))
	}
	noun := "attempts"
	if b.Count == 1 {
		noun = "attempt"
	}
	return fmt.Sprintf("blocked %d %s: %s", b.Count, noun, strings.Join(items, ", "))
}

// Line is the -v line for one record.
func (r *Record) Line() string {
	dst := r.Dst
	if r.Proto != ICMP {
		dst += ":" + strconv.Itoa(int(r.Port))
	}
	if r.Name != "" {
		dst += " (" + r.Name + ")"
	}
	return fmt.Sprintf("blocked %s %s: %s", r.Proto, dst, r.Reason)
}
