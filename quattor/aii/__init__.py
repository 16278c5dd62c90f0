"""AII, the Automated Installation Infrastructure: kickstarts, network boot configs and DHCP entries."""
