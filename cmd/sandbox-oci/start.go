package main

import "errors"

type startCmd struct{}

func (c *startCmd) Run(g *globals) error { return errors.New("start: not implemented yet") }
