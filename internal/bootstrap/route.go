package bootstrap

import (
	"fmt"
	"net"
)

// RouteTo returns this machine's address on the route to host: what a
// process there can dial to reach this one. No packet is sent (a UDP
// "connection" only asks the kernel for a route).
func RouteTo(host string) (string, error) {
	addrs, err := net.LookupHost(host)
	if err != nil || len(addrs) == 0 {
		return "", fmt.Errorf("cannot resolve host %s: %v", host, err)
	}
	c, err := net.Dial("udp", net.JoinHostPort(addrs[0], "9"))
	if err != nil {
		return "", fmt.Errorf("no route to host %s (%s): %w", host, addrs[0], err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String(), nil
}
