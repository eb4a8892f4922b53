package main

import "errors"

type specCmd struct{}

func (c *specCmd) Run(g *globals) error { return errors.New("spec: not implemented yet") }
