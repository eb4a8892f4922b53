package main

import "errors"

type execCmd struct{}

func (c *execCmd) Run(g *globals) error { return errors.New("exec: not implemented yet") }
