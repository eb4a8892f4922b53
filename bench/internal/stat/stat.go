// Package stat holds the statistics the bench commands share: the median
// of a sample, as hyperfine takes it (the middle value, or the mean of the
// two middle ones). Standard library only, like the commands.
package stat

import (
	"math"
	"slices"
)

// Median is the median of xs, which it leaves as they are; NaN when xs is
// empty.
func Median(xs []float64) float64 {
	n := len(xs)
	if n == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
