"""Learning: courses, lessons, quizzes, attempts, progress and the pure rules that grade and count them."""
