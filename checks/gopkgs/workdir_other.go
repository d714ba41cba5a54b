//go:build !unix

package gopkgs

import "errors"

func lockedWorkTree(base string) (*WorkTree, error) {
	return nil, errors.New("stable work dirs need flock")
}
