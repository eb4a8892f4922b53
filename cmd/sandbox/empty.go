package main

import (
	"fmt"
	"reflect"

	"github.com/alecthomas/kong"
)

// emptyValue refuses a string flag given an empty value (`--name ”`,
// `--bind ”`, `-e ”`): no flag of sandbox means anything by one, and
// taking it for "unset" would silently run without what was asked. Kong
// drops an empty item of a list flag, so a list with fewer items than the
// flag was given had one.
func emptyValue(ctx *kong.Context) error {
	given := map[*kong.Flag]int{}
	for _, p := range ctx.Path {
		if p.Flag != nil && !p.Resolved {
			given[p.Flag]++
		}
	}
	for _, p := range ctx.Path {
		f := p.Flag
		if f == nil || !f.Target.IsValid() {
			continue
		}
		v, empty := f.Target, false
		switch {
		case v.Kind() == reflect.String:
			empty = v.Len() == 0
		case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
			empty = v.Len() < given[f]
			for i := range v.Len() {
				empty = empty || v.Index(i).Len() == 0
			}
		}
		if empty {
			return fmt.Errorf("--%s: empty value (give a value, or leave the flag out)", f.Name)
		}
	}
	return nil
}

// emptyPath is kong's "path" mapper but for an empty value, which it
// expands to the working directory (an empty --upper made the working
// directory the upper, an empty --rootfs the root): the flag is left
// empty instead, for emptyValue to refuse by name.
type emptyPath struct{ kong kong.Mapper }

func newEmptyPath() kong.Option {
	m := emptyPath{kong: kong.NewRegistry().RegisterDefaults().ForNamedType("path", reflect.TypeFor[string]())}
	return kong.NamedMapper("path", m)
}

func (m emptyPath) Decode(ctx *kong.DecodeContext, target reflect.Value) error {
	if t := ctx.Scan.Peek(); target.Kind() == reflect.String && t.IsValue() && fmt.Sprint(t.Value) == "" {
		ctx.Scan.Pop()
		target.SetString("")
		return nil
	}
	return m.kong.Decode(ctx, target)
}
