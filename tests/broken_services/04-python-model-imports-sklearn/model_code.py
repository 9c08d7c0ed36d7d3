from sklearn.base import BaseEstimator


class Model:
    def load(self, path):
        self.path = path

    def predict(self, inputs):
        return {"predict": [0]}
