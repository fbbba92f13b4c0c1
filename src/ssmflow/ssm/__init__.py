"""The shared SSM core: pure functions on arrays, and thin Equinox modules over them.

- `hippo`: the HiPPO-LegS matrix, its normal part and that part's eigendecomposition;
- `init`: diagonal initializations (S4D-LegS, -Inv, -Lin, -Real, random) with the
  imaginary-part scale alpha (`imag_scale`) and the step-size draw;
- `discretize`: ZOH and bilinear discretization of a diagonal system;
- `kernels`: the Vandermonde kernel over N/2 conjugate-pair modes and a dense reference;
- `conv`: the causal convolution paths behind one `causal_conv` (FFT padded to 2L, the
  same over two channel groups, Toeplitz product; "auto" by H, L and backend), and the
  recurrent reference paths
  (`lax.scan`, `lax.associative_scan`);
- `layers`: `DiagonalSSM`, `S4DLayer`, `S4DBlock` and `S4DModel` (Equinox);
- `optim`: the two-group AdamW (SSM parameters at their own learning rate, no decay);
- `transfer`: transfer functions G(is) and Khat(omega), TV, spectral centroid and band tail;
- `sobolev`: the Sobolev filter (1 + kappa |f|)^beta on the convolution spectrum and its presets.

Conventions (shared spec s4d.md, section 2): N is the real state size and every channel
stores N/2 complex modes, one per conjugate pair; kernels take 2 Re of the mode sum;
lambda = -exp(log_re) + i im; trainable leaves are real arrays.
"""
