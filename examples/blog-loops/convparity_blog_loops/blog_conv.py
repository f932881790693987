"""Port of the loop-based matrix convolution from BrightLamp's 2019 CSDN post.

Source: "Python 实现 TensorFlow 和 PyTorch 验证卷积 convolution 函数矩阵化计算及反向传播"
(https://blog.csdn.net/oBrightLamp), file `vanilla_nn/convolution_matrix.py` of the post.

The structure and the loops are the post's: `Batch2ConvMatrix` builds the scan matrix with Python
loops over (n, oh, ow, c) and scatters its gradient back with loops over (n, c, oh, ow); `Conv2d`
multiplies that matrix with the flattened weight. Only names, docstrings and the integer division
of the output-size formula are modernised. It covers what the post covers: 2-D, stride only (one
int for both dims), no padding, no dilation, no groups, and a bias is required.

Shapes: x (N, C, H, W), weight (O, C, KH, KW), bias (O,), output and its gradient (N, O, OH, OW)
with OH = (H - KH) // stride + 1 and OW = (W - KW) // stride + 1.
"""

import numpy as np


class Batch2ConvMatrix:
    """im2col by loops: x (N, C, H, W) -> scan matrix (N * OH * OW, C * KH * KW), and its adjoint."""

    def __init__(self, stride, kernel_h, kernel_w):
        self.stride = stride
        self.kernel_h = kernel_h
        self.kernel_w = kernel_w
        self.x = None
        self.conv_size = None

    def __call__(self, x):
        """The scan matrix of x (N, C, H, W): one row per output position, one column per (c, kh, kw)."""
        self.x = x
        batch, channels, height, width = np.shape(self.x)
        conv_height = (height - self.kernel_h) // self.stride + 1
        conv_width = (width - self.kernel_w) // self.stride + 1
        scan = np.zeros((batch, conv_height, conv_width, channels, self.kernel_h, self.kernel_w))
        for n in range(batch):
            for h in range(conv_height):
                for w in range(conv_width):
                    for c in range(channels):
                        start_h = h * self.stride
                        start_w = w * self.stride
                        end_h = start_h + self.kernel_h
                        end_w = start_w + self.kernel_w
                        scan[n, h, w, c] = x[n, c, start_h:end_h, start_w:end_w]
        conv_matrix = scan.reshape(batch * conv_height * conv_width, -1)
        self.conv_size = [batch, channels, conv_height, conv_width]
        return conv_matrix

    def backward(self, d_matrix):
        """dx (N, C, H, W) from the gradient of the scan matrix (N * OH * OW, C * KH * KW)."""
        dx = np.zeros_like(self.x)
        kernel_h = self.kernel_h
        kernel_w = self.kernel_w
        batch, channels, conv_height, conv_width = self.conv_size
        d_matrix = d_matrix.reshape((batch, conv_height, conv_width, channels, kernel_h, kernel_w))
        for n in range(batch):
            for c in range(channels):
                for h in range(conv_height):
                    for w in range(conv_width):
                        start_h = h * self.stride
                        start_w = w * self.stride
                        end_h = start_h + self.kernel_h
                        end_w = start_w + self.kernel_w
                        dx[n, c][start_h:end_h, start_w:end_w] += d_matrix[n, h, w, c]
        return dx


class Conv2d:
    """y = conv(x, weight) + bias through the scan matrix; `backward` returns dx and sets `dw`, `db`."""

    def __init__(self, stride, weight=None, bias=None):
        self.stride = stride
        self.weight = weight
        self.bias = bias
        self.to_matrix = None
        self.x_matrix = None
        self.w_matrix = None
        self.dw = None
        self.db = None

    def __call__(self, x):
        """y (N, O, OH, OW) for x (N, C, H, W)."""
        out_channels, _, kernel_h, kernel_w = np.shape(self.weight)
        if self.to_matrix is None:
            self.to_matrix = Batch2ConvMatrix(self.stride, kernel_h, kernel_w)
        x_matrix = self.to_matrix(x)
        w_matrix = self.weight.reshape(out_channels, -1)
        batch, _, out_h, out_w = self.to_matrix.conv_size
        out_matrix = np.matmul(x_matrix, w_matrix.T) + self.bias
        out = out_matrix.reshape((batch, out_h, out_w, out_channels))
        self.x_matrix = x_matrix
        self.w_matrix = w_matrix
        out = out.transpose((0, 3, 1, 2))
        return out

    def backward(self, d_loss):
        """dx (N, C, H, W) for d_loss (N, O, OH, OW); stores dw (O, C, KH, KW) and db (O,)."""
        batch, out_channels, out_h, out_w = np.shape(d_loss)
        d_loss = d_loss.transpose((0, 2, 3, 1))
        d_loss = d_loss.reshape((batch * out_h * out_w, -1))
        dw = np.matmul(d_loss.T, self.x_matrix)
        self.dw = dw.reshape(np.shape(self.weight))
        self.db = np.sum(d_loss, axis=0)
        d_matrix = np.matmul(d_loss, self.w_matrix)
        dx = self.to_matrix.backward(d_matrix)
        return dx
