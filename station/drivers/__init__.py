"""Device drivers: one module per device family, all implementing `base.DeviceDriver`."""
