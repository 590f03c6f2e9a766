"""Video question answering: a language model writes the answer, image–text scorers on the frames steer each word."""
