"""What runs by itself: schedules, sensors, and the jobs they start."""
