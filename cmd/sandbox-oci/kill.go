package main

import "errors"

type killCmd struct{}

func (c *killCmd) Run(g *globals) error { return errors.New("kill: not implemented yet") }
