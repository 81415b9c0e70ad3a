// One URL per function. The defaults talk to the devserver that serves this page (`make run`).
// A site hosting this page replaces them with its deployed function URLs, for example
//   start: "https://functions.yandexcloud.net/d4e...".
window.TRYON_CONFIG = Object.assign({
  start: "/start",
  status: "/status",
  continue: "/continue",
  maxGarments: 5,
  minImageSide: 256,  // MIN_IMAGE_SIDE of the functions: smaller pictures are refused before upload
  pollSeconds: 2,
  retrySeconds: 120,      // a button's request that finds no connection is sent again for this long
  retryPauseSeconds: 1,   // first pause before sending it again (doubled each time, at most 15 s)
}, window.TRYON_CONFIG || {});
