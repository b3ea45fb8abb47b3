"""Video visits: visitors, approved lists, bookings, rooms and supervision."""
