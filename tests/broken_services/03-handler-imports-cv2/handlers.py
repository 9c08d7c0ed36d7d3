import numpy as np
from cv2 import resize

def preprocess(inputs):
    return {"features": inputs["features"]}


def postprocess(outputs):
    return {"predict": outputs["predict"]}
