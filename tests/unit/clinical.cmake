# Unit suites for services/common (clinical code).
