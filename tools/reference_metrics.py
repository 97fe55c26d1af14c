import numpy as np
from sklearn.metrics import roc_curve, roc_auc_score, accuracy_score, precision_score, recall_score, f1_score, confusion_matrix
from scipy.optimize import brentq
from scipy.interpolate import interp1d
from scipy.stats import pearsonr, spearmanr
d = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.55, 0.3, 0.7, 0.45], dtype=np.float64)
y = np.array([1,   1,   0,    0,   1,   0,   1,    0,   0,   1])
print("auc", roc_auc_score(y, -d))
fpr, tpr, thr = roc_curve(y, -d)
print("fpr", fpr.tolist()); print("tpr", tpr.tolist()); print("thr", (-thr).tolist())
eer = brentq(lambda x: 1. - x - interp1d(fpr, tpr)(x), 0., 1.)
print("eer", eer)
pred = (d < 0.5).astype(int)
print("acc", accuracy_score(y, pred), "prec", precision_score(y, pred), "rec", recall_score(y, pred), "f1", f1_score(y, pred))
print("cm tn fp fn tp", confusion_matrix(y, pred).ravel().tolist())
a = np.array([1.0, 2.5, 3.0, 4.5, 2.0, 5.0]); b = np.array([0.8, 2.0, 3.5, 4.0, 1.0, 4.8])
print("pearson", pearsonr(a, b)[0], "spearman", spearmanr(a, b)[0])
c = np.array([1.0, 2.0, 2.0, 3.0, 5.0]); e = np.array([2.0, 1.0, 4.0, 4.0, 6.0])
print("spearman ties", spearmanr(c, e)[0], "pearson2", pearsonr(c, e)[0])
