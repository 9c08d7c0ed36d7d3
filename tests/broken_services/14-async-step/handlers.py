def preprocess(inputs):
    return {"features": inputs["features"]}



async def postprocess(outputs):
    return outputs
