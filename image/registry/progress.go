package registry

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"sandbox/image"

	"golang.org/x/term"
)

// progress shows a pull's downloads: on a terminal a live line (layer i of
// n, bytes, rate), redrawn at most every 200 ms; elsewhere one line per
// layer once it is fetched; nothing when w is nil.
type progress struct {
	w     io.Writer
	live  bool
	mu    sync.Mutex
	b     image.Blob
	i, n  int
	got   int64
	begin time.Time
	drawn time.Time
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.live = true
	}
	return p
}

func (p *progress) start(b image.Blob, i, n int) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.b, p.i, p.n, p.got, p.begin = b, i, n, 0, time.Now()
	p.draw(true)
}

func (p *progress) add(k int) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got += int64(k)
	p.draw(false)
}

func (p *progress) done(err error) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.live {
		p.draw(true)
		fmt.Fprintln(p.w)
		return
	}
	if err == nil {
		fmt.Fprintf(p.w, "layer %d/%d %s: %s in %s (%s)\n", p.i+1, p.n, short(p.b.Digest), image.HumanSize(p.got),
			time.Since(p.begin).Round(time.Millisecond), rate(p.got, time.Since(p.begin)))
	}
}

// draw redraws the live line (forced, or at most every 200 ms).
func (p *progress) draw(force bool) {
	if !p.live || !force && time.Since(p.drawn) < 200*time.Millisecond {
		return
	}
	p.drawn = time.Now()
	line := fmt.Sprintf("layer %d/%d %s: %s / %s  %s", p.i+1, p.n, short(p.b.Digest), image.HumanSize(p.got), image.HumanSize(p.b.Size),
		rate(p.got, time.Since(p.begin)))
	fmt.Fprintf(p.w, "\r%s\x1b[K", line)
}

func short(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}

func rate(n int64, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return image.HumanSize(int64(float64(n)/d.Seconds())) + "/s"
}
