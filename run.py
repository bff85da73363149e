import time, os, sys
sys.path.insert(0, "/tmp/prof")
import prof_preload as pp
import sipkernel as sk
from sipkernel.bench._procs import READY
def main():
    with sk.Kernel(preload=["sipkernel.bench._procs", "prof_preload"]) as k:
        for i in range(6):
            pp.mark("K.start")
            d=k.domain("process")
            pp.mark("K.domain_returned")
            a,b=sk.channel(READY)
            h=k.spawn(pp.replier,a,domain=d)
            pp.mark("K.spawned")
            b.recv(timeout=30)
            pp.mark("K.recv")
            h.join(); b.close(); d.close(5)
            pp.mark("K.closed")
if __name__=="__main__": main()
