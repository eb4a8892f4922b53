// Command ratios prints a start-up benchmark table from hyperfine's JSON
// export: command, median, mean ± σ, and the ratio of each median to the
// baseline's median. When the run measured a base binary too (commands named
// "sandbox@base …" next to "sandbox …"), a side-by-side table of base and new
// comes first; -goal adds a table of goals met or not. Several -json files
// (one hyperfine run per round of a benchmark) are merged: a command's
// times from every file, its median, mean and σ taken over all of them, so
// that a machine whose speed drifts during the run moves every line alike
// rather than those measured in its slow minutes; -merged writes them as
// one export.
//
//	ratios -json startup-r1.json [-json startup-r2.json]... [-merged startup.json] [-baseline bwrap] [-md summary.md] [-goal 'sandbox ps<=10ms']...
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"sandbox/bench/internal/stat"
)

// Command-name prefixes of the two sandbox binaries in one run.
const (
	newPrefix  = "sandbox "
	basePrefix = "sandbox@base "
)

// result is the part of one hyperfine result that the table needs.
type result struct {
	Command string    `json:"command"`
	Mean    float64   `json:"mean"`
	Stddev  float64   `json:"stddev"`
	Median  float64   `json:"median"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
	Times   []float64 `json:"times"`
}

type export struct {
	Results []result `json:"results"`
}

// row is one line of the table, in milliseconds.
type row struct {
	Command string
	Median  float64
	Mean    float64
	Stddev  float64
	Runs    int
	Ratio   float64 // median / baseline median; 0 when there is no baseline
}

// parseFile parses the hyperfine export at path.
func parseFile(path string) ([]result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rs, err := parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rs, nil
}

func parse(r io.Reader) ([]result, error) {
	var e export
	if err := json.NewDecoder(r).Decode(&e); err != nil {
		return nil, fmt.Errorf("decoding hyperfine JSON: %w", err)
	}
	if len(e.Results) == 0 {
		return nil, errors.New("hyperfine JSON has no results")
	}
	return e.Results, nil
}

// merge joins the results of several runs by command, in the order the
// commands first appear, with each command's times from all of them and
// its statistics (hyperfine's: median of the times, mean, sample σ, min,
// max) taken over all; results without times keep their own figures. One
// run is returned as hyperfine gave it.
func merge(runs ...[]result) []result {
	if len(runs) == 1 {
		return runs[0]
	}
	var out []result
	index := map[string]int{}
	for _, rs := range runs {
		for _, r := range rs {
			i, ok := index[r.Command]
			if !ok {
				index[r.Command] = len(out)
				out = append(out, r)
				out[len(out)-1].Times = slices.Clone(r.Times)
				continue
			}
			out[i].Times = append(out[i].Times, r.Times...)
		}
	}
	for i := range out {
		if len(out[i].Times) > 0 {
			out[i] = stats(out[i].Command, out[i].Times)
		}
	}
	return out
}

// stats is the result of command over times (seconds, at least one).
func stats(command string, times []float64) result {
	n := len(times)
	r := result{Command: command, Times: times, Min: slices.Min(times), Max: slices.Max(times), Median: stat.Median(times)}
	var sum float64
	for _, t := range times {
		sum += t
	}
	r.Mean = sum / float64(n)
	if n > 1 {
		var sq float64
		for _, t := range times {
			sq += (t - r.Mean) * (t - r.Mean)
		}
		r.Stddev = math.Sqrt(sq / float64(n-1))
	}
	return r
}

// rows converts results to milliseconds and computes the ratios against the
// first result whose command starts with baseline.
func rows(results []result, baseline string) ([]row, bool) {
	var base float64
	found := false
	for _, r := range results {
		if baseline != "" && strings.HasPrefix(r.Command, baseline) && r.Median > 0 {
			base, found = r.Median, true
			break
		}
	}
	out := make([]row, 0, len(results))
	for _, r := range results {
		w := row{
			Command: r.Command,
			Median:  r.Median * 1000,
			Mean:    r.Mean * 1000,
			Stddev:  r.Stddev * 1000,
			Runs:    len(r.Times),
		}
		if found {
			w.Ratio = r.Median / base
		}
		out = append(out, w)
	}
	return out, found
}

// pair is one sandbox line measured with the base and the new binary; either
// side may be missing (nil) when its trial run failed.
type pair struct {
	Command   string // the new binary's name for the line
	Base, New *row
}

// pairs matches "sandbox@base X" with "sandbox X", in the order of the new
// lines (then base lines without a new one). It returns nil when the run has
// no base line at all.
func pairs(rs []row) []pair {
	hasBase := false
	for _, w := range rs {
		if strings.HasPrefix(w.Command, basePrefix) {
			hasBase = true
			break
		}
	}
	if !hasBase {
		return nil
	}
	var out []pair
	index := map[string]int{}
	for i := range rs {
		w := &rs[i]
		var name string
		isBase := strings.HasPrefix(w.Command, basePrefix)
		switch {
		case isBase:
			name = newPrefix + strings.TrimPrefix(w.Command, basePrefix)
		case strings.HasPrefix(w.Command, newPrefix):
			name = w.Command
		default:
			continue
		}
		j, ok := index[name]
		if !ok {
			j = len(out)
			index[name] = j
			out = append(out, pair{Command: name})
		}
		if isBase {
			out[j].Base = w
		} else {
			out[j].New = w
		}
	}
	return out
}

// goal is one target of the form NAME<=Nx (a ratio to the baseline) or
// NAME<=Nms (an absolute median).
type goal struct {
	Command string
	Limit   float64
	Ratio   bool // Limit is a ratio, else milliseconds
}

func parseGoal(s string) (goal, error) {
	name, limit, ok := strings.Cut(s, "<=")
	name = strings.TrimSpace(name)
	limit = strings.TrimSpace(limit)
	if !ok || name == "" {
		return goal{}, fmt.Errorf("goal %q: want NAME<=Nx or NAME<=Nms", s)
	}
	g := goal{Command: name}
	switch {
	case strings.HasSuffix(limit, "ms"):
		limit = strings.TrimSuffix(limit, "ms")
	case strings.HasSuffix(limit, "x"), strings.HasSuffix(limit, "×"):
		limit = strings.TrimSuffix(strings.TrimSuffix(limit, "x"), "×")
		g.Ratio = true
	default:
		return goal{}, fmt.Errorf("goal %q: the limit needs a unit, x or ms", s)
	}
	v, err := strconv.ParseFloat(limit, 64)
	if err != nil || v <= 0 {
		return goal{}, fmt.Errorf("goal %q: bad limit %q", s, limit)
	}
	g.Limit = v
	return g, nil
}

func (g goal) String() string {
	if g.Ratio {
		return fmt.Sprintf("%s ≤ %.1f× bwrap", g.Command, g.Limit)
	}
	return fmt.Sprintf("%s ≤ %g ms", g.Command, g.Limit)
}

// value is the goal's measure of w ("n/a" when it cannot be had) and whether
// it meets the goal.
func (g goal) value(w *row, found bool) (string, bool) {
	switch {
	case w == nil:
		return "—", false
	case g.Ratio && !found:
		return "n/a", false
	case g.Ratio:
		return fmt.Sprintf("%.2f×", w.Ratio), w.Ratio <= g.Limit
	default:
		return fmt.Sprintf("%.2f ms", w.Median), w.Median <= g.Limit
	}
}

// goalRow is one evaluated goal: the new binary's line decides.
type goalRow struct {
	Goal      string
	Base, New string
	Met       string
}

func evalGoals(goals []goal, rs []row, found bool) []goalRow {
	byName := map[string]*row{}
	for i := range rs {
		byName[rs[i].Command] = &rs[i]
	}
	var out []goalRow
	for _, g := range goals {
		nw := byName[g.Command]
		var bw *row
		if strings.HasPrefix(g.Command, newPrefix) {
			bw = byName[basePrefix+strings.TrimPrefix(g.Command, newPrefix)]
		}
		nv, ok := g.value(nw, found)
		bv, _ := g.value(bw, found)
		met := "no"
		switch {
		case nw == nil:
			met = "not measured"
		case nv == "n/a":
			met = "n/a"
		case ok:
			met = "yes"
		}
		if bw == nil {
			bv = "—"
		}
		out = append(out, goalRow{Goal: g.String(), Base: bv, New: nv, Met: met})
	}
	return out
}

func ratio(w row, found bool) string {
	if !found {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", w.Ratio)
}

// cells of a pair: base ms, base ×, new ms, new ×, new ÷ base.
func (p pair) cells(found bool) [5]string {
	c := [5]string{"—", "—", "—", "—", "—"}
	if p.Base != nil {
		c[0] = fmt.Sprintf("%.2f", p.Base.Median)
		c[1] = ratio(*p.Base, found)
	}
	if p.New != nil {
		c[2] = fmt.Sprintf("%.2f", p.New.Median)
		c[3] = ratio(*p.New, found)
	}
	if p.Base != nil && p.New != nil && p.Base.Median > 0 {
		c[4] = fmt.Sprintf("%.2f", p.New.Median/p.Base.Median)
	}
	return c
}

// pad pads s with spaces to n runes: on the left when n > 0, on the right
// when n < 0.
func pad(s string, n int) string {
	left := n > 0
	n = max(n, -n) - utf8.RuneCountInString(s)
	if n <= 0 {
		return s
	}
	if left {
		return strings.Repeat(" ", n) + s
	}
	return s + strings.Repeat(" ", n)
}

// textTable writes rows of cells with the first column left-aligned and the
// others right-aligned, two spaces apart.
func textTable(b *strings.Builder, table [][]string) {
	if len(table) == 0 {
		return
	}
	widths := make([]int, len(table[0]))
	for _, r := range table {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	for _, r := range table {
		var line strings.Builder
		for i, c := range r {
			if i == 0 {
				line.WriteString(pad(c, -widths[i]))
				continue
			}
			line.WriteString("  " + pad(c, widths[i]))
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
}

func writeText(out io.Writer, rs []row, baseline string, found bool, goals []goalRow) error {
	var b strings.Builder
	if ps := pairs(rs); ps != nil {
		table := [][]string{{"sandbox line (base vs new)", "base ms", "base × " + baseline,
			"new ms", "new × " + baseline, "new ÷ base"}}
		for _, p := range ps {
			c := p.cells(found)
			table = append(table, []string{p.Command, c[0], c[1], c[2], c[3], c[4]})
		}
		textTable(&b, table)
		b.WriteString("\n")
	}
	width := len("command")
	for _, w := range rs {
		width = max(width, utf8.RuneCountInString(w.Command))
	}
	line := func(cmd, median, mean, runs, ratio string) {
		b.WriteString(pad(cmd, -width) + "  " + pad(median, 9) + "  " +
			pad(mean, 15) + "  " + pad(runs, 4) + "  " + ratio + "\n")
	}
	line("command", "median ms", "mean ± σ ms", "runs", "× "+baseline+" (median)")
	for _, w := range rs {
		line(w.Command, fmt.Sprintf("%.2f", w.Median),
			fmt.Sprintf("%.2f ± %.2f", w.Mean, w.Stddev),
			fmt.Sprint(w.Runs), ratio(w, found))
	}
	if len(goals) > 0 {
		b.WriteString("\n")
		table := [][]string{{"goal", "base", "new", "met (new)"}}
		for _, g := range goals {
			table = append(table, []string{g.Goal, g.Base, g.New, g.Met})
		}
		textTable(&b, table)
	}
	_, err := io.WriteString(out, b.String())
	return err
}

func writeMarkdown(out io.Writer, rs []row, baseline string, found bool, goals []goalRow) error {
	var b strings.Builder
	if ps := pairs(rs); ps != nil {
		fmt.Fprintf(&b, "| sandbox line | base ms | base × %s | new ms | new × %s | new ÷ base |\n", baseline, baseline)
		b.WriteString("|:---|---:|---:|---:|---:|---:|\n")
		for _, p := range ps {
			c := p.cells(found)
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s |\n", p.Command, c[0], c[1], c[2], c[3], c[4])
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "| command | median ms | mean ± σ ms | runs | × %s median |\n", baseline)
	b.WriteString("|:---|---:|---:|---:|---:|\n")
	for _, w := range rs {
		fmt.Fprintf(&b, "| `%s` | %.2f | %.2f ± %.2f | %d | %s |\n",
			w.Command, w.Median, w.Mean, w.Stddev, w.Runs, ratio(w, found))
	}
	if len(goals) > 0 {
		b.WriteString("\n| goal | base | new | met (new) |\n|:---|---:|---:|:---|\n")
		for _, g := range goals {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", g.Goal, g.Base, g.New, g.Met)
		}
	}
	_, err := io.WriteString(out, b.String())
	return err
}

// fileFlags collects repeated -json flags.
type fileFlags []string

func (f *fileFlags) String() string     { return strings.Join(*f, ",") }
func (f *fileFlags) Set(s string) error { *f = append(*f, s); return nil }

// goalFlags collects repeated -goal flags.
type goalFlags []goal

func (f *goalFlags) String() string { return fmt.Sprint(*f) }
func (f *goalFlags) Set(s string) error {
	g, err := parseGoal(s)
	if err != nil {
		return err
	}
	*f = append(*f, g)
	return nil
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("ratios", flag.ContinueOnError)
	var jsonPaths fileFlags
	fs.Var(&jsonPaths, "json", "hyperfine --export-json file (required; repeatable: the runs are merged)")
	mergedPath := fs.String("merged", "", "also write the merged results as one hyperfine-style JSON export to this file")
	baseline := fs.String("baseline", "bwrap", "command name prefix of the baseline")
	mdPath := fs.String("md", "", "also write the table as Markdown to this file")
	var goals goalFlags
	fs.Var(&goals, "goal", "a goal NAME<=Nx (ratio to the baseline) or NAME<=Nms (median); repeatable")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(jsonPaths) == 0 {
		return errors.New("-json is required")
	}
	var runs [][]result
	for _, p := range jsonPaths {
		rs, err := parseFile(p)
		if err != nil {
			return err
		}
		runs = append(runs, rs)
	}
	results := merge(runs...)
	if *mergedPath != "" {
		b, err := json.MarshalIndent(export{Results: results}, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*mergedPath, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	rs, found := rows(results, *baseline)
	if !found {
		fmt.Fprintf(os.Stderr, "ratios: no result named %q*: ratios are n/a\n", *baseline)
	}
	gs := evalGoals(goals, rs, found)
	if err := writeText(stdout, rs, *baseline, found, gs); err != nil {
		return err
	}
	if *mdPath != "" {
		var b strings.Builder
		if err := writeMarkdown(&b, rs, *baseline, found, gs); err != nil {
			return err
		}
		if err := os.WriteFile(*mdPath, []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "ratios:", err)
		os.Exit(1)
	}
}
