"""Learning in the portal: the learner's catalogue, courses, lessons and quizzes; teachers' authoring, enrolments
and reports; the public check of a certificate; lessons read aloud."""
