"""Runtime guards of a training process: progress watchdog and lost peers, preemption signals, non-finite
losses, host memory returned to the OS, and a clean exit."""
