package main

import "errors"

type pauseCmd struct{}

func (c *pauseCmd) Run(g *globals) error { return errors.New("pause: not implemented yet") }
