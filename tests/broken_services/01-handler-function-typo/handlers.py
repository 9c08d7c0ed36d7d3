def preprocess(inputs):
    return {"features": inputs["features"]}


def postprocess(outputs):
    return {"predict": outputs["predict"]}
