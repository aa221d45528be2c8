"""Device discovery: which USB serial devices are present, which fixture slot each is in, and
when one is plugged in or pulled out. Sources (udev, static config ports, the simulator) report
`SerialDevice`s to a sink; `feed.EngineFeed` turns those reports into engine commands."""
