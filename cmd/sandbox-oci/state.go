package main

import "errors"

type stateCmd struct{}

func (c *stateCmd) Run(g *globals) error { return errors.New("state: not implemented yet") }
