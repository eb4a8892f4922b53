package main

import "errors"

type updateCmd struct{}

func (c *updateCmd) Run(g *globals) error { return errors.New("update: not implemented yet") }
