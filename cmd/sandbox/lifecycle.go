package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"sandbox/control"
	"sandbox/internal/wire"
	"sandbox/journal"
)

type psCmd struct {
	All  bool `short:"a" help:"Also list ended detached sandboxes (kept until sandbox rm)."`
	JSON bool `name:"json" help:"Print one JSON array."`
}

type execCmd struct {
	TTY     string   `name:"tty" enum:"auto,always,never" default:"auto" help:"Give the command a private terminal: auto (when stdin and stdout are terminals and sandbox is not started in the background of one), always, never."`
	Env     []string `short:"e" sep:"none" placeholder:"K=V" help:"Set K=V over the sandbox's environment, or copy K from yours (repeatable)."`
	Chdir   string   `placeholder:"DIR" help:"Working directory inside (default: the sandbox command's)."`
	Name    string   `arg:"" help:"The sandbox (sandbox ps lists them)."`
	Command []string `arg:"" passthrough:"partial" name:"command" help:"The command and its arguments (after --)."`
}

type killCmd struct {
	Name   string `arg:"" help:"The sandbox."`
	Signal string `arg:"" optional:"" default:"TERM" help:"Signal name or number (default TERM)."`
}

type stopCmd struct {
	Time time.Duration `default:"10s" help:"How long the command may take to end after SIGTERM before the whole sandbox is killed."`
	Name string        `arg:"" help:"The sandbox."`
}

type logsCmd struct {
	Follow bool   `short:"f" help:"Keep printing until the sandbox ends."`
	Name   string `arg:"" help:"The detached sandbox."`
}

type rmCmd struct {
	Name string `arg:"" help:"The ended detached sandbox."`
}

// lifecycle runs the commands that act on named sandboxes; ok false when
// cmd is none of them.
func lifecycle(c *cli, cmd string, lg *journal.Logger) (int, bool) {
	var err error
	switch cmd {
	case "ps":
		err = runPS(c.Ps)
	case "exec":
		args := c.Exec.Command
		if len(args) > 0 && args[0] == "--" {
			args = args[1:]
		}
		status, err := control.Exec(control.ExecOptions{Name: c.Exec.Name, Args: args, Env: c.Exec.Env,
			Chdir: c.Exec.Chdir, TTY: c.Exec.TTY})
		return exitStatus(status, err, lg), true
	case "kill":
		sig, perr := control.ParseSignal(c.Kill.Signal)
		if err = perr; err == nil {
			err = control.Kill(c.Kill.Name, sig)
		}
	case "stop":
		if c.Stop.Time < 0 {
			err = journal.Usagef("--time %v: a grace period cannot be negative (0 kills at once)", c.Stop.Time)
			break
		}
		var note string
		if note, err = control.Stop(c.Stop.Name, c.Stop.Time); note != "" {
			lg.Notice(note)
		}
	case "logs":
		err = control.Logs(c.Logs.Name, c.Logs.Follow, os.Stdout)
	case "rm":
		err = control.Remove(c.Rm.Name)
	default:
		return 0, false
	}
	if err != nil {
		return exitStatus(wire.StatusError, err, lg), true
	}
	return 0, true
}

// exitStatus prints err (if any) and returns the status to exit with.
func exitStatus(status int, err error, lg *journal.Logger) int {
	if err == nil {
		return status
	}
	lg.Fail(err)
	var s interface{ Status() int }
	if errors.As(err, &s) {
		return s.Status()
	}
	return status
}

func runPS(p psCmd) error {
	list, err := control.List(p.All)
	if err != nil {
		return err
	}
	if p.JSON {
		if list == nil {
			list = []control.Listed{}
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	// Buffered: tabwriter writes each cell and padding by itself (41
	// write calls for one sandbox).
	out := bufio.NewWriter(os.Stdout)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tSTATUS\tPID\tAGE\tROOT\tNET\tLIMITS\tMEM\tCPU\tCOMMAND")
	for _, l := range list {
		status := l.Status
		if l.ExitStatus != nil {
			status += " (" + strconv.Itoa(*l.ExitStatus) + ")"
		}
		since := "-" // a record not yet written, or unreadable
		if !l.Created.IsZero() {
			since = age(time.Since(l.Created))
		}
		command := make([]string, len(l.Command))
		for i, a := range l.Command {
			command[i] = printable(a)
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.Name, status, l.Pid,
			since, orDash(printable(l.Root)), orDash(l.Net), orDash(strings.Join(l.Limits, ",")),
			memory(l.MemoryBytes), cpu(l.CPUSeconds), strings.Join(command, " "))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return out.Flush()
}

// printable is s for a table cell: quoted with Go's escapes when it holds
// a control character (a newline, a tab, a terminal's escape sequence) or
// bytes that are not UTF-8, which would break the table or reach the
// caller's terminal as they are.
func printable(s string) string {
	if !utf8.ValidString(s) || strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + "h"
	}
	return strconv.Itoa(int(d.Hours()/24)) + "d"
}

func memory(b int64) string {
	if b < 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fM", float64(b)/(1<<20))
}

func cpu(s float64) string {
	if s < 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fs", s)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
