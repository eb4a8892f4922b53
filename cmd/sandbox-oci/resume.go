package main

import "errors"

type resumeCmd struct{}

func (c *resumeCmd) Run(g *globals) error { return errors.New("resume: not implemented yet") }
