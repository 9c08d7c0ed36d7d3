def preprocess(inputs)
    return inputs
