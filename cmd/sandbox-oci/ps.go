package main

import "errors"

type psCmd struct{}

func (c *psCmd) Run(g *globals) error { return errors.New("ps: not implemented yet") }
