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

// IfaceAddr returns the address TCP uses for --iface: the first IPv4
// address (else IPv6) of the interface of that name, or this host's
// address inside the CIDR.
func IfaceAddr(spec string) (string, error) {
	if _, ipnet, err := net.ParseCIDR(spec); err == nil {
		addrs, err := net.InterfaceAddrs()
		if err != nil {
			return "", fmt.Errorf("--iface %s: %w", spec, err)
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && ipnet.Contains(n.IP) {
				return n.IP.String(), nil
			}
		}
		return "", fmt.Errorf("--iface %s: this host has no address in that network", spec)
	}
	ifc, err := net.InterfaceByName(spec)
	if err != nil {
		return "", fmt.Errorf("--iface %s: %w", spec, err)
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return "", fmt.Errorf("--iface %s: %w", spec, err)
	}
	var v6 string
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok || n.IP.IsLinkLocalUnicast() {
			continue
		}
		if n.IP.To4() != nil {
			return n.IP.String(), nil
		}
		if v6 == "" {
			v6 = n.IP.String()
		}
	}
	if v6 != "" {
		return v6, nil
	}
	return "", fmt.Errorf("--iface %s: the interface has no usable address", spec)
}
