// SluiceService: placeholder until the layer lands.
