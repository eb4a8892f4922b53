package main

import "errors"

type featuresCmd struct{}

func (c *featuresCmd) Run(g *globals) error { return errors.New("features: not implemented yet") }
